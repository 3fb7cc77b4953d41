"""Network models: the graph IR."""

from verifiNN.models.network import MLP, ModelOrigin, Network, Node

__all__ = ["MLP", "ModelOrigin", "Network", "Node"]
