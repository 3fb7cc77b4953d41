"""Load ONNX models into verifiNN's graph IR.

:func:`load_onnx` reads a ``.onnx`` file, checks every operator before any
conversion (one error lists all unsupported operators and attributes), folds
constant subgraphs (``Constant``, ``Shape -> Gather -> Concat -> Reshape`` and
the like), converts the rest node by node into :mod:`verifiNN.ops` and runs the
simplification passes of :mod:`verifiNN.models.passes`.

Shapes. Every tensor's full ONNX shape is known at load time: the batch
dimension counts as 1. The network input's per-sample shape drops a leading
batch dimension of 1 or a symbolic one when the input has rank 2 or more
(``[1, 1, 1, 5] -> (1, 1, 5)``, ``[N, 784] -> (784,)``, ``[1] -> (1,)``); other
dynamic dimensions are an error. Reshapes only relabel C-order data, so a
tensor's IR node may hold any shape of the same size; a converter asks for the
layout it needs and a ``Reshape`` or ``Flatten`` node is added when needed.

Supported operators (``Converters`` below; attributes not named are ignored
because they cannot change the result):

* affine: ``Gemm`` (transA/transB/alpha/beta), ``MatMul`` with one constant
  2-D operand, ``Conv`` 1-D/2-D (pads, strides, dilations, group, every
  ``auto_pad``), ``BatchNormalization`` (inference), ``Add``/``Sub``/``Mul``/
  ``Div`` with a constant (broadcast that does not enlarge the data),
  ``Add``/``Sub`` of two data tensors, ``Neg``, ``AveragePool`` and
  ``GlobalAveragePool`` 1-D/2-D (``count_include_pad``), ``Pad`` (constant mode,
  last two axes), ``Concat`` of data tensors;
* shape: ``Flatten``, ``Reshape`` (``0``, ``-1``, ``allowzero``), ``Squeeze``,
  ``Unsqueeze``, ``Transpose`` when it only moves size-1 axes, ``Identity``,
  ``Dropout``, float-to-float ``Cast``;
* nonlinear: ``Relu``, ``LeakyRelu``, ``Sigmoid``, ``Tanh``, ``MaxPool`` 1-D/2-D,
  ``Mul`` of two data tensors of the same size (the IR's ``Mul``).

Constant folding (all inputs constant, or ``Shape``/``Size`` of any tensor):
see ``_FOLDERS``. Rejected with :class:`~verifiNN.errors.UnsupportedModelError`:
any other operator, custom domains, ``Pad`` modes other than ``constant``,
pooling dilations or a ``ceil_mode`` that changes the output size,
training-mode batch norm, 3-D convolutions, broadcasting products of two data
tensors,
transposes that move data, several model inputs or outputs.
"""

from verifiNN.io.onnx.converters import constant_only_ops, supported_ops
from verifiNN.io.onnx.graph import MAX_OPSET, MIN_OPSET, sample_shape
from verifiNN.io.onnx.loader import MAX_MODEL_BYTES, load_onnx, onnx_to_network

__all__ = [
    "MAX_MODEL_BYTES",
    "MAX_OPSET",
    "MIN_OPSET",
    "constant_only_ops",
    "load_onnx",
    "onnx_to_network",
    "sample_shape",
    "supported_ops",
]
