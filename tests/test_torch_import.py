"""PyTorch import: direct Sequential conversion, the ONNX fallback, torch -> ONNX -> verifiNN."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from verifiNN.errors import InvalidInputError, UnsupportedModelError
from verifiNN.io import from_torch, load_onnx


def _randomise_batchnorm(module: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = layer.num_features
            layer.running_mean.copy_(torch.randn(n, generator=generator))
            layer.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            if layer.affine:
                layer.weight.data.copy_(torch.randn(n, generator=generator))
                layer.bias.data.copy_(torch.randn(n, generator=generator))


def _reference(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """The module's inference output, computed in float64 on a copy."""
    double = copy.deepcopy(module).double().eval()
    with torch.no_grad():
        return double(torch.from_numpy(x)).reshape(len(x), -1).numpy()


def _assert_matches(network, module: nn.Module, input_shape, n: int = 16) -> None:
    x = np.random.default_rng(3).normal(size=(n, *input_shape))
    ref = _reference(module, x)
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(network.get_output(x), ref, rtol=1e-5, atol=1e-5 * scale)


def _export(module: nn.Module, input_shape, path) -> None:
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, *input_shape),), path, dynamo=False)


class Residual(nn.Module):
    """Normalisation, conv + batch norm, a residual add, concat, subtraction, pools."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.skip = nn.Conv2d(3, 4, 1)
        self.pool = nn.AvgPool2d(2, padding=1, count_include_pad=False)
        self.fc = nn.Linear(8 * 4 * 4, 6)
        self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / 0.25
        h = torch.relu(self.bn(self.conv1(x)))
        h = nn.functional.leaky_relu(self.conv2(h), 0.2) + self.skip(x)
        h = torch.cat([torch.sigmoid(h), torch.tanh(h) - h], dim=1)
        h = nn.functional.max_pool2d(self.pool(h), 2, stride=1)
        return self.fc(h.flatten(1))


def _conv_stack() -> nn.Sequential:
    torch.manual_seed(2)
    return nn.Sequential(
        nn.ZeroPad2d((1, 0, 2, 1)),
        nn.Conv2d(3, 6, 3, stride=2, padding=1, groups=3),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding="same", dilation=2),
        nn.MaxPool2d(2),
        nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=True),
        nn.LeakyReLU(0.1),
        nn.Sequential(nn.Flatten(), nn.Dropout(0.5)),
        nn.Linear(8 * 4 * 4, 16),
        nn.Tanh(),
        nn.Linear(16, 10),
    )


def _mlp() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 20),
        nn.BatchNorm1d(20),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(20, 20),
        nn.Sigmoid(),
        nn.Identity(),
        nn.Linear(20, 4),
    )


MODELS = {
    "residual": (Residual, (3, 8, 8)),
    "conv_stack": (_conv_stack, (3, 11, 10)),
    "mlp": (_mlp, (3, 4)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_model_loaded_both_ways_matches_torch(name, tmp_path):
    make, shape = MODELS[name]
    module = make()
    _randomise_batchnorm(module)
    module.eval()
    direct = from_torch(module, shape)
    assert direct.input_shape == shape
    _assert_matches(direct, module, shape)
    path = tmp_path / f"{name}.onnx"
    _export(module, shape, path)
    loaded = load_onnx(path)
    assert loaded.input_shape == shape
    assert loaded.origin.input_shape == (1, *shape)
    _assert_matches(loaded, module, shape)


def test_sequential_is_converted_directly_with_module_paths():
    module = _conv_stack()
    _randomise_batchnorm(module)
    network = from_torch(module, (3, 11, 10))
    names = [node.name for node in network.nodes]
    assert names[0] == "0"  # the ZeroPad2d, by its path: no ONNX export happened
    assert "8.0" in names  # the nested Flatten
    kinds = [node.op.kind for node in network.nodes]
    assert "ElementwiseAffine" not in kinds  # batch norm folded into the conv before it
    assert "Identity" not in kinds


def test_mlp_becomes_a_plain_mlp():
    module = nn.Sequential(
        nn.Flatten(), nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Dropout(), nn.Linear(5, 2)
    )
    _randomise_batchnorm(module)
    network = from_torch(module, (2, 3))
    assert [w.shape for w in network.as_mlp().weights] == [(5, 6), (2, 5)]
    _assert_matches(network, module, (2, 3))


def test_training_mode_module_is_read_in_inference_mode_and_left_alone():
    module = _mlp()
    _randomise_batchnorm(module)
    module.train()
    network = from_torch(module, (3, 4))
    assert module.training
    _assert_matches(network, module, (3, 4))
    residual = Residual()
    _randomise_batchnorm(residual)
    residual.train()
    network = from_torch(residual, (3, 8, 8))
    assert residual.training
    _assert_matches(network, residual, (3, 8, 8))


def test_linear_on_non_flat_input_acts_on_last_axis():
    module = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6, 2))
    network = from_torch(module, (2, 4))
    _assert_matches(network, module, (2, 4))


def test_float64_module_and_unflatten():
    module = nn.Sequential(nn.Linear(12, 12), nn.Unflatten(1, (3, 2, 2)), nn.Conv2d(3, 2, 2))
    module = module.double()
    network = from_torch(module, (12,))
    _assert_matches(network, module, (12,))


def test_unsupported_layers_are_named_by_path():
    module = nn.Sequential(
        nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.Softmax(dim=1)), nn.GELU(), nn.Linear(4, 2)
    )
    with pytest.raises(UnsupportedModelError) as info:
        from_torch(module, (4,))
    message = str(info.value)
    assert "1.1 (Softmax)" in message and "2 (GELU)" in message
    assert "0 (Linear)" not in message


@pytest.mark.parametrize(
    ("layer", "shape", "words"),
    [
        (nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), (1, 5, 5), ["0", "padding_mode"]),
        (nn.MaxPool2d(2, ceil_mode=True), (1, 5, 5), ["0", "ceil_mode"]),
        (nn.AvgPool2d(2, divisor_override=3), (1, 4, 4), ["0", "divisor_override"]),
        (nn.BatchNorm1d(3, track_running_stats=False), (3,), ["0", "track_running_stats"]),
        (nn.Flatten(0), (3, 2), ["0", "start_dim"]),
    ],
)
def test_unsupported_layer_settings(layer, shape, words):
    with pytest.raises(UnsupportedModelError) as info:
        from_torch(nn.Sequential(layer), shape)
    for word in words:
        assert word in str(info.value)


def test_sequential_holding_a_custom_module_goes_through_onnx():
    module = nn.Sequential(Residual(), nn.ReLU(), nn.Linear(6, 2))
    _randomise_batchnorm(module)
    network = from_torch(module, (3, 8, 8))
    assert network.nodes[0].name != "0"  # names come from the ONNX export
    _assert_matches(network, module, (3, 8, 8))


def test_custom_module_with_unsupported_op_goes_through_onnx_and_fails_cleanly():
    class RunningSum(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, dim=1)

    with pytest.raises(UnsupportedModelError, match="CumSum"):
        from_torch(RunningSum(), (3,))


def test_bad_input_shape():
    with pytest.raises(InvalidInputError):
        from_torch(nn.Sequential(nn.ReLU()), (0, 3))
    with pytest.raises(UnsupportedModelError, match="Dense expects"):
        from_torch(nn.Sequential(nn.Linear(3, 2)), (4,))
