"""No import cycles in envsim (issue 21 item 3).

The import graph of ``envsim/`` is read from the source with :mod:`ast`: an edge ``a -> b`` when
module ``a`` imports ``b`` (importing ``envsim.x.y`` from outside ``envsim.x`` also runs
``envsim.x/__init__``, so it is an edge to ``envsim.x`` too; imports under ``if TYPE_CHECKING:``
never run and are left out). Three checks:

- the module-level graph has no cycle (a failure names it, ``a -> b -> a``: ``a`` imports ``b``);
- no import inside a function closes a cycle, i.e. none exists only to dodge one: hoisting every
  function-level ``envsim`` import to module level would still leave the graph acyclic
  (except the edges of :data:`DEFERRED`, each with its reason; the list may only shrink);
- every module imports in a fresh interpreter, in topological order, without an ``ImportError``.
"""

from __future__ import annotations

import ast
import graphlib
import importlib.util
import subprocess
import sys
import textwrap
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HEAVY = frozenset(
    {"litellm", "torch", "trl", "transformers", "ray", "pandas", "pyarrow", "openenv", "mcp", "uvicorn", "peft"}
)
"""Optional heavy dependencies: modules importing one at module level are left out of the run-time import (slow);
the static checks cover them. Function-level imports of these are lazy loading, not cycle dodging."""

DEFERRED: dict[tuple[str, str], str] = {}
"""Function-level imports that still close a cycle, each with the move that will remove it."""


@dataclass
class ImportGraph:
    """The imports of a package's modules: module-level edges, function-level ones, heavy third-party ones."""

    modules: set[str] = field(default_factory=set)
    top: dict[str, set[str]] = field(default_factory=dict)
    """Module -> the package's modules it imports when it is imported."""
    nested: dict[str, dict[str, int]] = field(default_factory=dict)
    """Module -> the package's modules imported inside its functions (-> the first line doing so)."""
    heavy: dict[str, set[str]] = field(default_factory=dict)
    """Module -> the :data:`HEAVY` dependencies it imports at module level."""

    def with_nested(self, leave_out: Collection[tuple[str, str]] = ()) -> dict[str, set[str]]:
        """The graph as it would be with every function-level import hoisted, but those in ``leave_out``
        (``(importer, module)``: with the packages around ``module`` that importing it runs)."""
        skip = {(m, ".".join(t.split(".")[:i])) for m, t in leave_out for i in range(1, t.count(".") + 2)}
        graph = {m: set(targets) for m, targets in self.top.items()}
        for module, targets in self.nested.items():
            graph[module] |= {t for t in targets if (module, t) not in skip}
        return graph


def _module_files(root: Path, package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if any(not (root.joinpath(*parts[:i]) / "__init__.py").exists() for i in range(len(parts))):
            continue  # not inside a package (a data folder)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join((package, *parts)), path


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(importer: str, is_package: bool, node: ast.Import | ast.ImportFrom, graph: ImportGraph) -> set[str]:
    """The package's modules that ``node`` (in ``importer``) runs, ancestors outside the importer's own included."""
    package = importer.split(".")[0]
    named: list[str] = []
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            here = importer.split(".") if is_package else importer.split(".")[:-1]
            here = here[: len(here) - node.level + 1]
            base = ".".join([*here, base] if base else here)
        named = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in graph.modules else base for alias in node.names]
    found: set[str] = set()
    own = importer.split(".")
    for name in named:
        if name.split(".")[0] != package:
            continue
        while name not in graph.modules and "." in name:
            name = name.rsplit(".", 1)[0]
        parts = name.split(".")
        found.add(name)
        found.update(".".join(parts[:i]) for i in range(1, len(parts)) if own[:i] != parts[:i])
    found.discard(importer)
    return found


def _import_nodes(
    nodes: Iterable[ast.AST], in_function: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement that runs, and whether it runs inside a function."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, in_function
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.orelse, in_function)
        else:
            inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from _import_nodes(ast.iter_child_nodes(node), inner)


def build_graph(root: Path, package: str) -> ImportGraph:
    """The import graph of the package whose folder is ``root``."""
    graph = ImportGraph()
    files = dict(_module_files(root, package))
    graph.modules = set(files)
    for module, path in files.items():
        top: set[str] = set()
        nested: dict[str, int] = {}
        heavy: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, in_function in _import_nodes(tree.body):
            found = _targets(module, path.name == "__init__.py", node, graph)
            if in_function:
                for target in found:
                    nested.setdefault(target, node.lineno)
                continue
            top |= found
            if isinstance(node, ast.Import) or not node.level:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                heavy |= {n.split(".")[0] for n in names} & HEAVY
        graph.top[module] = top
        graph.nested[module] = {t: line for t, line in nested.items() if t not in top}
        graph.heavy[module] = heavy
    return graph


def cycle_of(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (module -> modules it imports), as ``[a, b, ..., a]`` where each imports the next."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        return list(reversed(err.args[1]))
    return None


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen: set[str] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(graph.get(node, ()))
    return False


def _envsim_graph() -> ImportGraph:
    spec = importlib.util.find_spec("envsim")
    assert spec is not None and spec.origin is not None
    return build_graph(Path(spec.origin).parent, "envsim")


@pytest.fixture(scope="module")
def envsim_graph() -> ImportGraph:
    return _envsim_graph()


def test_the_module_level_imports_of_envsim_have_no_cycle(envsim_graph: ImportGraph) -> None:
    cycle = cycle_of(envsim_graph.top)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_function_level_import_of_envsim_exists_to_dodge_a_cycle(envsim_graph: ImportGraph) -> None:
    cycle = cycle_of(envsim_graph.with_nested(set(DEFERRED)))
    assert cycle is None, (
        "import cycle once function-level imports are hoisted (move the code where it belongs): "
        + " -> ".join(cycle or [])
    )
    everything = envsim_graph.with_nested()
    for importer, target in DEFERRED:
        assert target in envsim_graph.nested.get(importer, {}), f"{importer} no longer imports {target}: drop it"
        assert _reaches(everything, target, importer), f"{importer} -> {target} closes no cycle now: drop it"


def test_every_module_imports_in_a_fresh_interpreter_in_topological_order(envsim_graph: ImportGraph) -> None:
    order = list(graphlib.TopologicalSorter(envsim_graph.top).static_order())
    light = [m for m in order if not envsim_graph.heavy[m]]
    assert len(light) > 100  # the light modules are nearly all of them
    code = textwrap.dedent(
        """
        import importlib, sys, traceback
        for name in sys.argv[1:]:
            try:
                importlib.import_module(name)
            except ImportError:
                print(f"importing {name} failed:")
                traceback.print_exc(file=sys.stdout)
                raise SystemExit(1)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *light], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the checker itself, on a small package ----------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "pkg"


def test_a_cycle_is_named_and_a_dodging_function_level_import_is_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg.b import B\n",
            "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n"
            "def f():\n    from pkg.c import C\nB = 1\n",
            "c.py": "import torch\nfrom . import a\nC = 1\n",
            "sub/__init__.py": "from pkg.sub.x import X\n",
            "sub/x.py": "X = 1\n",
            "d.py": "from pkg.sub.x import X\n",
            "data/tool.py": "import pkg.a\n",
        },
    )
    graph = build_graph(root, "pkg")
    assert "pkg.data.tool" not in graph.modules
    assert graph.top["pkg.b"] == set()  # the TYPE_CHECKING import never runs
    assert graph.nested["pkg.b"] == {"pkg.c": 5}
    assert graph.top["pkg.c"] == {"pkg.a"} and graph.heavy["pkg.c"] == {"torch"}
    assert graph.top["pkg.d"] == {"pkg.sub", "pkg.sub.x"}  # importing pkg.sub.x runs pkg/sub/__init__ first
    assert graph.top["pkg.sub"] == {"pkg.sub.x"}
    assert cycle_of(graph.top) is None
    assert cycle_of(graph.with_nested()) in (
        ["pkg.a", "pkg.b", "pkg.c", "pkg.a"],
        ["pkg.b", "pkg.c", "pkg.a", "pkg.b"],
        ["pkg.c", "pkg.a", "pkg.b", "pkg.c"],
    )
    assert cycle_of(graph.with_nested({("pkg.b", "pkg.c")})) is None
