"""Import PyTorch modules into verifiNN's graph IR.

:func:`from_torch` converts an ``nn.Sequential`` (nested Sequentials included)
of the layers in ``_LAYERS`` directly, layer by layer. Any other module (a
custom ``forward``, residual blocks, ...) is exported to ONNX in memory
(``torch.onnx.export`` with the TorchScript exporter) and loaded with
:func:`verifiNN.io.onnx.onnx_to_network`.

Either way the network computes the module's *inference* function
(``module.eval()``): batch norm uses its running statistics and dropout is the
identity. The module itself is left as it was.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Iterator, Sequence

import onnx
import torch
from torch import nn

from verifiNN.errors import InvalidInputError, InvalidNetworkError, UnsupportedModelError
from verifiNN.io.onnx import onnx_to_network
from verifiNN.models.network import INPUT, LABELERS, Network, Node
from verifiNN.models.passes import simplify
from verifiNN.ops import (
    AvgPool2d,
    Conv2d,
    Dense,
    ElementwiseAffine,
    Flatten,
    Identity,
    LeakyReLU,
    MaxPool2d,
    Op,
    Pad,
    ReLU,
    Reshape,
    Shape,
    Sigmoid,
    Tanh,
    as_tensor,
)

__all__ = ["from_torch"]

_Layer = Callable[[nn.Module, Shape, str], list[Op]]


def from_torch(module: nn.Module, input_shape: Sequence[int], labeler: str = "argmax") -> Network:
    """Convert a PyTorch module into a :class:`~verifiNN.models.network.Network`.

    Args:
        module: an ``nn.Sequential`` of supported layers (Linear, Conv2d,
            Flatten, Unflatten, ReLU, LeakyReLU, Sigmoid, Tanh, AvgPool2d,
            MaxPool2d, BatchNorm1d/2d, Identity, Dropout, ZeroPad2d), or any
            module that ``torch.onnx.export`` can export with supported ops.
        input_shape: the per-sample input shape (no batch dimension).
        labeler: ``'argmax'`` or ``'argmin'``.

    Returns:
        The simplified network computing ``module.eval()(x)`` for ``x`` of
        shape ``(B, *input_shape)``.

    Raises:
        InvalidInputError: a non-positive input shape.
        UnsupportedModelError: a layer or layer setting verifiNN does not
            support (named by its module path), or a module that cannot be
            exported to ONNX.
    """
    shape = tuple(int(d) for d in input_shape)
    if not shape or min(shape) <= 0:
        raise InvalidInputError(f"input_shape {tuple(input_shape)} must have positive dimensions")
    if labeler not in LABELERS:
        raise InvalidNetworkError(f"unknown labeler {labeler!r}: expected one of {LABELERS}")
    if isinstance(module, nn.Sequential):
        layers = list(_leaves(module, ""))
        if all(type(m) in _LAYERS or _is_builtin(m) for _, m in layers):
            return _convert_sequential(layers, shape, labeler)
    return _via_onnx(module, shape, labeler)


def _leaves(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    """``(path, layer)`` of a Sequential, nested Sequentials flattened."""
    for name, child in module.named_children():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, path)
        else:
            yield path, child


def _is_builtin(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.nn.")


def _convert_sequential(layers: list[tuple[str, nn.Module]], shape: Shape, labeler: str) -> Network:
    unsupported = [f"{p} ({type(m).__name__})" for p, m in layers if type(m) not in _LAYERS]
    if unsupported:
        raise UnsupportedModelError(
            f"unsupported layer(s): {', '.join(unsupported)}; supported: "
            + ", ".join(sorted(t.__name__ for t in _LAYERS))
        )
    nodes: list[Node] = []
    previous, current = INPUT, shape
    for path, layer in layers:
        for k, op in enumerate(_LAYERS[type(layer)](layer, current, path)):
            name = path if k == 0 else f"{path}/{k}"
            try:
                current = tuple(op.output_shape(current))
            except ValueError as exc:
                raise UnsupportedModelError(
                    f"layer {path} ({type(layer).__name__}): {exc}"
                ) from None
            nodes.append(Node(name, op, (previous,)))
            previous = name
    return simplify(Network.from_graph(shape, nodes, previous, labeler, INPUT))


def _via_onnx(module: nn.Module, shape: Shape, labeler: str) -> Network:
    params = list(module.parameters())
    dtype = params[0].dtype if params else torch.float32
    buffer = io.BytesIO()
    training = module.training
    try:
        module.eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.zeros((1, *shape), dtype=dtype),),
                buffer,
                input_names=["input"],
                output_names=["output"],
                dynamo=False,
            )
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UnsupportedModelError(
            f"cannot convert {type(module).__name__}: it is not a Sequential of supported "
            f"layers and the ONNX export failed: {first}"
        ) from exc
    finally:
        module.train(training)
    model = onnx.load_model_from_string(buffer.getvalue())
    return onnx_to_network(model, labeler, source=f"<torch module {type(module).__name__}>")


# --------------------------------------------------------------------- layers
def _unsupported(path: str, layer: nn.Module, what: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"layer {path} ({type(layer).__name__}): {what}")


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _t(value: torch.Tensor | None, size: int, fill: float) -> torch.Tensor:
    return as_tensor(torch.full((size,), fill) if value is None else value)


def _linear(layer: nn.Linear, shape: Shape, path: str) -> list[Op]:
    weight, bias = as_tensor(layer.weight), _t(layer.bias, layer.out_features, 0.0)
    if len(shape) == 1:
        return [Dense(weight, bias)]
    # nn.Linear acts on the last axis: one block per leading index
    rows = math.prod(shape[:-1])
    if rows * rows * weight.numel() > 1 << 25:
        raise _unsupported(path, layer, f"acting on an input of shape {shape} is too large")
    eye = torch.eye(rows, dtype=torch.float64)
    dense = Dense(torch.kron(eye, weight), bias.repeat(rows))
    return [Flatten(), dense, Reshape((*shape[:-1], layer.out_features))]


def _conv2d(layer: nn.Conv2d, shape: Shape, path: str) -> list[Op]:
    if layer.padding_mode != "zeros":
        raise _unsupported(path, layer, f"padding_mode={layer.padding_mode!r}")
    kernel, dilation = _pair(layer.kernel_size), _pair(layer.dilation)
    if layer.padding == "valid":
        pads = (0, 0, 0, 0)
    elif layer.padding == "same":  # torch puts the odd cell at the bottom/right
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        pads = (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)
    else:
        ph, pw = _pair(layer.padding)
        pads = (ph, pw, ph, pw)
    bias = _t(layer.bias, layer.out_channels, 0.0)
    return [
        Conv2d(as_tensor(layer.weight), bias, _pair(layer.stride), pads, dilation, layer.groups)
    ]


def _flatten(layer: nn.Flatten | nn.Unflatten, shape: Shape, path: str) -> list[Op]:
    full = (1, *shape)
    if isinstance(layer, nn.Unflatten):
        if not isinstance(layer.dim, int) or layer.dim % len(full) == 0:
            raise _unsupported(path, layer, f"dim={layer.dim!r}")
        dim = layer.dim % len(full)
        out = (*full[1:dim], *layer.unflattened_size, *full[dim + 1 :])
    else:
        start, end = layer.start_dim % len(full), layer.end_dim % len(full)
        if start == 0:
            raise _unsupported(path, layer, "start_dim=0 flattens the batch dimension")
        out = (*full[1:start], math.prod(full[start : end + 1]), *full[end + 1 :])
    if math.prod(out) != math.prod(shape):
        raise _unsupported(path, layer, f"cannot reshape {shape} to {out}")
    return [Flatten() if len(out) == 1 else Reshape(tuple(int(d) for d in out))]


def _ceil_mode_ok(
    layer: nn.Module,
    shape: Shape,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> bool:
    if not getattr(layer, "ceil_mode", False):
        return True
    return all((n + 2 * p - k) % s == 0 for n, k, s, p in zip(shape[-2:], kernel, stride, padding))


def _pool(layer: nn.AvgPool2d | nn.MaxPool2d, shape: Shape, path: str) -> list[Op]:
    kernel = _pair(layer.kernel_size)
    stride = _pair(layer.stride or layer.kernel_size)
    ph, pw = _pair(layer.padding)
    if len(shape) != 3:
        raise _unsupported(path, layer, f"expects (C, H, W) inputs, got {shape}")
    if not _ceil_mode_ok(layer, shape, kernel, stride, (ph, pw)):
        raise _unsupported(path, layer, "ceil_mode=True changes the output size")
    if isinstance(layer, nn.MaxPool2d):
        if _pair(layer.dilation) != (1, 1) or layer.return_indices:
            raise _unsupported(path, layer, "dilation or return_indices")
        return [MaxPool2d(kernel, stride, (ph, pw, ph, pw))]
    if layer.divisor_override is not None:
        raise _unsupported(path, layer, "divisor_override")
    return [AvgPool2d(kernel, stride, (ph, pw, ph, pw), bool(layer.count_include_pad))]


def _batchnorm(layer: nn.BatchNorm1d | nn.BatchNorm2d, shape: Shape, path: str) -> list[Op]:
    if layer.running_mean is None or layer.running_var is None:
        raise _unsupported(path, layer, "track_running_stats=False (no inference statistics)")
    n = layer.num_features
    scale = _t(layer.weight, n, 1.0) / torch.sqrt(as_tensor(layer.running_var) + layer.eps)
    shift = _t(layer.bias, n, 0.0) - as_tensor(layer.running_mean) * scale
    tail = (1,) * (len(shape) - 1)
    return [ElementwiseAffine(scale.reshape(n, *tail), shift.reshape(n, *tail))]


def _zero_pad(layer: nn.ZeroPad2d, shape: Shape, path: str) -> list[Op]:
    left, right, top, bottom = (int(p) for p in layer.padding)
    if min(left, right, top, bottom) < 0:
        raise _unsupported(path, layer, f"negative padding {layer.padding}")
    return [Pad((top, left, bottom, right), 0.0)]


def _simple(make: Callable[[nn.Module], Op]) -> _Layer:
    return lambda layer, shape, path: [make(layer)]


_LAYERS: dict[type, _Layer] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.Flatten: _flatten,
    nn.Unflatten: _flatten,
    nn.ReLU: _simple(lambda m: ReLU()),
    nn.LeakyReLU: _simple(lambda m: LeakyReLU(float(m.negative_slope))),
    nn.Sigmoid: _simple(lambda m: Sigmoid()),
    nn.Tanh: _simple(lambda m: Tanh()),
    nn.AvgPool2d: _pool,
    nn.MaxPool2d: _pool,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.Identity: _simple(lambda m: Identity()),
    nn.Dropout: _simple(lambda m: Identity()),
    nn.ZeroPad2d: _zero_pad,
}
"""Layer type -> converter to IR ops (given the per-sample input shape and the layer's path)."""
