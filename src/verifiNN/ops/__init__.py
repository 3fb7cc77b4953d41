"""The operations of verifiNN's graph IR (semantics only; bounds live in :mod:`verifiNN.bounds`)."""

from verifiNN.ops.activations import Identity, LeakyReLU, Mul, ReLU, Sigmoid, Tanh
from verifiNN.ops.base import Op, Shape, as_tensor
from verifiNN.ops.linear import Conv2d, Dense, ElementwiseAffine
from verifiNN.ops.pooling import AvgPool2d, MaxPool2d
from verifiNN.ops.structure import Add, Concat, Flatten, Pad, Reshape, Slice

__all__ = [
    "Add",
    "AvgPool2d",
    "Concat",
    "Conv2d",
    "Dense",
    "ElementwiseAffine",
    "Flatten",
    "Identity",
    "LeakyReLU",
    "MaxPool2d",
    "Mul",
    "Op",
    "Pad",
    "ReLU",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Tanh",
    "as_tensor",
]
