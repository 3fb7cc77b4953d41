"""``python -m verifiNN.cli``: the ``verifinn`` command."""

from verifiNN.cli import run

run()
