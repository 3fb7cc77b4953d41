"""The code base stays ruff-clean (skipped where ruff is not installed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO_ROOT


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    paths = [p for p in ("src", "tests", "benchmarks", "examples") if (REPO_ROOT / p).exists()]
    result = subprocess.run(
        [ruff, "check", "--quiet", *paths], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
