"""The house rules of ``src/verifiNN``, checked on its import graph (read with ``ast``).

* No import circle, imports inside functions included: a module's graph node
  depends on every module it imports and on their parent packages (importing
  ``a.b.c`` runs ``a/b/__init__.py`` first).
* Layers import only downward (docs/ARCHITECTURE.md): kernel < IR < loaders <
  engines (bounds, solvers) < search < front door < face. Engines and search
  never import the loaders (engines never parse files), and nothing below the
  front door imports the front door or the face.
* An import inside a function is for a heavy optional dependency only; the face
  (the command line) may also import the library lazily so that ``--help``
  answers before PyTorch is loaded.
* Files stay under 800 lines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "verifiNN"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "kernel",
        (
            "_version",
            "_stdio",
            "errors",
            "results",
            "budget",
            "memory",
            "cores",
            "executors",
            "methods",
        ),
    ),
    ("ir", ("ops", "models", "specs", "regions")),
    ("io", ("io",)),
    ("engines", ("bounds", "solvers")),
    ("search", ("search",)),
    ("front door", ("verifiers", "verifier", "certify")),
    ("face", ("cli", "bench", "fuzz", "suite", "scoring", "scoreboard", "solver_interface", "")),
)
RANK = {room: rank for rank, (_, rooms) in enumerate(LAYERS) for room in rooms}
LAYER_NAME = {room: name for name, rooms in LAYERS for room in rooms}
HEAVY_OPTIONAL = {"cvxpy", "ray", "matplotlib", "onnxruntime", "torch"}
MAX_LINES = 800


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


class _Imports(ast.NodeVisitor):
    """Imports of one module: ``(target, line, inside a function)``; skips ``TYPE_CHECKING``."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, int, bool]] = []
        self.depth = 0

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return  # never runs
        self.generic_visit(node)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            self.found.append((f"{base}.{alias.name}", node.lineno, self.depth > 0))
            self.found.append((base, node.lineno, self.depth > 0))


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, int, bool]]]:
    """``(module -> modules it needs, every (module, target, line, in function) import)``."""
    paths = {_module_name(p): p for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = defaultdict(set)
    imports: list[tuple[str, str, int, bool]] = []
    for module, path in paths.items():
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        for target, line, in_function in visitor.found:
            imports.append((module, target, line, in_function))
            if target not in paths or target == module:
                continue
            edges[module].add(target)
            parts = target.split(".")
            for k in range(2, len(parts)):  # parent packages run first ...
                parent = ".".join(parts[:k])
                if not module.startswith(parent + ".") and parent != module:  # ... unless ours
                    edges[module].add(parent)
    return edges, [i for i in imports if i[1] in paths or i[1].split(".")[0] != "verifiNN"]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_module_belongs_to_a_layer():
    rooms = {_room(_module_name(p)) for p in SRC.rglob("*.py")}
    assert rooms <= set(RANK), f"modules outside every layer: {sorted(rooms - set(RANK))}"


def test_no_import_circle():
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_layers_import_only_downward():
    _, imports = _graph()
    wrong = []
    for module, target, line, _ in imports:
        if not target.startswith("verifiNN.") or target.split(".")[1] not in RANK:
            continue
        source, goal = _room(module), _room(target)
        upward = RANK[goal] > RANK[source]
        parses = goal == "io" and LAYER_NAME[source] in ("engines", "search")
        if upward or parses:
            wrong.append(f"{module}:{line} ({LAYER_NAME[source]}) imports {target}")
    assert wrong == []


def test_imports_inside_functions_are_for_heavy_optional_dependencies_only():
    _, imports = _graph()
    wrong = []
    for module, target, line, in_function in imports:
        if not in_function or LAYER_NAME[_room(module)] == "face":
            continue
        if target.split(".")[0] not in HEAVY_OPTIONAL:
            wrong.append(f"{module}:{line} imports {target} inside a function")
    assert wrong == []


def test_the_checks_catch_a_circle_and_an_upward_import():
    """The graph walk itself can fail: a made-up cycle is found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_files_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines"


def test_import_and_help_answer_without_loading_torch():
    """``import verifiNN``, ``verifinn --help``, a usage error and a missing file answer
    before PyTorch (seconds to import) is loaded."""
    import subprocess
    import sys

    probe = (
        "import sys, contextlib, io\n"
        "import verifiNN\n"
        "from verifiNN.cli import main\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    codes = [main(['--help']), main(['verify', '--bogus']),\n"
        "             main(['verify', 'missing.onnx', 'missing.vnnlib'])]\n"
        "print(codes, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "[0, 2, 2] False", done.stdout + done.stderr
