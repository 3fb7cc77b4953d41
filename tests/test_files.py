"""Files as the competition ships them: ``PATH.gz`` is read when ``PATH`` is absent."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from conftest import random_mlp_params
from test_cli import write_mlp_onnx, write_vnnlib
from verifiNN.errors import ModelLoadError, SpecError
from verifiNN.io import load_onnx, load_vnnlib


def _gzip(path):
    target = path.with_name(path.name + ".gz")
    with path.open("rb") as source, gzip.open(target, "wb") as handle:
        shutil.copyfileobj(source, handle)
    return target


@pytest.fixture
def shipped(tmp_path):
    """A model and a property, each only as ``.gz`` (and plain copies elsewhere)."""
    rng = np.random.default_rng(0)
    plain = tmp_path / "plain"
    plain.mkdir()
    model = write_mlp_onnx(plain / "net.onnx", *random_mlp_params(rng, [3, 8, 2]))
    prop = write_vnnlib(plain / "prop.vnnlib", [-1.0] * 3, [1.0] * 3, 2, "(assert (<= Y_0 Y_1))")
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    for path in (model, prop):
        shutil.copy(_gzip(path), zipped)
    return plain, zipped


def test_gz_is_read_when_the_plain_file_is_absent_or_named(shipped):
    plain, zipped = shipped
    reference = load_onnx(plain / "net.onnx")
    x = np.random.default_rng(1).uniform(-1, 1, size=(20, 3))
    for path in (zipped / "net.onnx", zipped / "net.onnx.gz"):
        network = load_onnx(path)
        np.testing.assert_array_equal(network.get_output(x), reference.get_output(x))
    expected = load_vnnlib(plain / "prop.vnnlib")
    for path in (zipped / "prop.vnnlib", zipped / "prop.vnnlib.gz"):
        assert load_vnnlib(path) == expected


def test_missing_and_corrupt_gz_files_are_typed_errors_naming_the_file(shipped, tmp_path):
    _, zipped = shipped
    with pytest.raises(ModelLoadError, match=r"nothing\.onnx"):
        load_onnx(zipped / "nothing.onnx")
    bad = tmp_path / "bad.onnx.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00 this is no gzip stream")
    with pytest.raises(ModelLoadError, match=r"bad\.onnx"):
        load_onnx(tmp_path / "bad.onnx")
    cut = tmp_path / "cut.vnnlib.gz"
    cut.write_bytes((zipped / "prop.vnnlib.gz").read_bytes()[:20])
    with pytest.raises(SpecError, match=r"cut\.vnnlib"):
        load_vnnlib(cut)
