"""Train the shipped example models on scikit-learn's digits and export them.

Two small classifiers of the 8x8 digit images (pixels scaled to ``[0, 1]``),
trained with a fixed seed on the first 80% of the shuffled data set:

* ``digits_mlp.onnx``: 64 -> 32 -> 32 -> 10, ReLU;
* ``digits_cnn.onnx``: on ``1x8x8`` images, conv 4x3x3 (stride 1, pad 1) ->
  ReLU -> conv 8x4x4 (stride 2, pad 1) -> ReLU -> 128 -> 10;
* ``digits_cnn_tiny.onnx``: conv 2x3x3 (stride 2, pad 1) -> ReLU -> 32 -> 10,
  small enough for the SDP relaxation on a CPU (``benchmarks/sdp.py digits``).

The held-out 20% is written to ``digits_test.npz`` (``x``: float32 of shape
``(N, 64)``, ``y``: int64 labels). The same file serves both models: verifiNN
reshapes each sample to the network's input shape.

Run: ``python examples/digits/train.py`` (needs scikit-learn; about 20 s).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).parent


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=1, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 8, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )


def cnn_tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 10)
    )


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``, pixels in ``[0, 1]``, an 80/20 split."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def train(
    model: nn.Module, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...], epochs: int, seed: int
) -> nn.Module:
    """Adam on the cross-entropy, mini-batches of 64; ``shape``: one input's shape."""
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(x).reshape(-1, *shape), torch.from_numpy(y)
    for _ in range(epochs):
        for batch in torch.randperm(len(ys)).split(64):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(xs[batch]), ys[batch]).backward()
            optimiser.step()
    return model.eval()


def export(model: nn.Module, shape: tuple[int, ...], path: Path) -> None:
    torch.onnx.export(
        model, (torch.zeros(1, *shape),), str(path), input_names=["x"],
        output_names=["logits"], dynamo=False,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    x_train, y_train, x_test, y_test = load_digits_split()
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "digits_test.npz", x=x_test, y=y_test)
    models = (
        ("digits_mlp", mlp, (64,)),
        ("digits_cnn", cnn, (1, 8, 8)),
        ("digits_cnn_tiny", cnn_tiny, (1, 8, 8)),
    )
    for name, build, shape in models:
        torch.manual_seed(1)
        model = train(build(), x_train, y_train, shape, args.epochs, seed=2)
        with torch.no_grad():
            scores = model(torch.from_numpy(x_test).reshape(-1, *shape))
        accuracy = (scores.argmax(1).numpy() == y_test).mean()
        export(model, shape, args.out / f"{name}.onnx")
        print(f"{name}: test accuracy {accuracy:.3f} -> {args.out / (name + '.onnx')}")


if __name__ == "__main__":
    main()
