"""Network models: the graph IR."""

from verifiNN.models.network import MLP, Network, Node

__all__ = ["MLP", "Network", "Node"]
