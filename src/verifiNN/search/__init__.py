"""Search engines: falsifying attacks (and, later, branch and bound)."""

from verifiNN.search.attack import AttackResult, DomainAttackResult, attack, attack_domains

__all__ = ["AttackResult", "DomainAttackResult", "attack", "attack_domains"]
