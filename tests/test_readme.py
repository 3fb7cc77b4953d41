"""The README stays true: its Python blocks run, and CI runs its install and test commands."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("block", code_blocks("python"))
def test_python_blocks_run(block):
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def test_ci_runs_the_readme_install_and_test_commands():
    """The README's Tests block (its install and test commands) is what CI runs."""
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    block = next(b for b in code_blocks("bash") if "pytest" in b)
    commands = [line.strip() for line in block.splitlines()]
    install = next(c for c in commands if c.startswith("pip install"))
    test = next(c for c in commands if "pytest" in c)
    assert install in ci.splitlines()
    assert test in ci.splitlines()


def test_quickstart_example_runs():
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "not_robust" in out
    assert "0.50000" in out


def test_cli_version():
    exe = shutil.which("verifinn")
    if exe is None:
        pytest.skip("verifinn entry point not installed (pip install -e .)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*\n", out)  # the bare version (VNN-LIB interface)
