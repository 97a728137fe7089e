"""The package layout: no import cycles, described package folders, a small top level.

The import graph is built statically with :mod:`ast` from every ``harness/**/*.py``. Its nodes
are module names (a package stands for its ``__init__.py``) and its edges are every ``import`` and
``from ... import`` statement anywhere in a file: at module level, inside functions and methods
(lazy imports), and under ``if TYPE_CHECKING:`` (a type-only cycle is still a cycle of concepts).
Only edges between ``harness`` modules are kept. Imports by string (``importlib.import_module``)
are not statements and are not counted; :func:`harness.registry.load_all` uses them on purpose.

How one statement becomes edges, in module ``M``:

* Relative imports are resolved against ``M``'s package (``__init__.py`` is its own package).
* ``import a.b.c`` is an edge to ``a.b.c``.
* ``from p import n`` is an edge to ``p.n`` when that is a module, otherwise to ``p`` (``n`` is a
  name defined in ``p``'s ``__init__``). ``from p import *`` is an edge to ``p``.
* Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b`` first, so it is an edge to
  each of those packages too, EXCEPT the packages ``M`` itself lives in: those were initialised
  before ``M`` started to run, so the edge adds nothing at run time. This keeps the registering
  pattern (a package ``__init__`` imports its modules, each module imports a sibling) acyclic,
  while ``from . import NAME`` of a name defined in the ``__init__`` still counts. A package whose
  ``__init__`` holds only a docstring has no edges out, so an edge into it can never close a cycle.

Cycles are the strongly connected components (Tarjan) with more than one module, or one module
importing itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "harness"

# The only modules allowed directly in ``harness/``: cross-cutting pieces every package may use.
TOP_LEVEL = frozenset({"__init__", "errors", "registry", "suite", "metrics", "stats", "sysinfo"})

# Cycles removed on other branches of the layout redesign. Each entry is the sorted set of modules
# in one strongly connected component; the test fails if the component changes or disappears, so
# the entry has to be deleted by whoever removes the cycle.
KNOWN_CYCLES: dict[frozenset[str], str] = {
    # Removed by the measure helper (meters.energy and meters.base split).
    frozenset({"harness.meters.base", "harness.meters.energy"}): "measure helper",
    # Removed by the byo helper (byo.task and pipeline.variants).
    frozenset({"harness.byo.task", "harness.pipeline.variants"}): "byo helper",
}


def _modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name → file for every ``*.py`` under the package folder ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _own_package(name: str, path: Path) -> str:
    """The package relative imports in ``name`` resolve against."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _resolve(package: str, level: int, module: str | None) -> str:
    base = package.split(".")
    if level > 1:
        if level - 1 >= len(base):
            raise AssertionError(f"relative import beyond the top package from {package!r}")
        base = base[: len(base) - (level - 1)]
    if level == 0:
        return module or ""
    return ".".join(base + ([module] if module else []))


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_targets(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """All ``harness`` modules that ``name`` (file ``path``) imports, per the module docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _own_package(name, path)
    direct: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            direct.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                direct.add(sub if alias.name != "*" and sub in modules else base)
    own = {name, *_ancestors(name)}  # initialised before ``name`` runs
    targets: set[str] = set()
    for target in direct:
        if target not in modules:
            continue  # outside the package (or a missing module: the tests importing it fail)
        targets.add(target)  # explicit: counts even for an own package (``from . import NAME``)
        targets.update(mod for mod in _ancestors(target) if mod in modules and mod not in own)
    return targets


def import_graph() -> dict[str, set[str]]:
    """The static import graph of the package: module name → modules it imports."""
    modules = _modules()
    return {name: import_targets(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the strongly connected components of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp: list[str] = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                components.append(sorted(comp))
    return components


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Components that are cycles: several modules, or one that imports itself."""
    return [c for c in strongly_connected(graph) if len(c) > 1 or c[0] in graph.get(c[0], ())]


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    inside = set(component)
    edges = [f"    {a} -> {b}" for a in component for b in sorted(graph[a] & inside)]
    return "cycle among " + ", ".join(component) + ":\n" + "\n".join(edges)


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = import_cycles(graph)
    unknown = [c for c in cycles if frozenset(c) not in KNOWN_CYCLES]
    assert not unknown, "import cycles (make imports point down):\n" + "\n".join(
        _describe(c, graph) for c in unknown
    )
    gone = set(KNOWN_CYCLES) - {frozenset(c) for c in cycles}
    assert not gone, f"known cycles no longer present, delete them from KNOWN_CYCLES: {sorted(map(sorted, gone))}"


def test_cycle_detection_can_fail() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert sorted(import_cycles(graph)) == [["a", "b", "c"], ["d"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_edge_rules(tmp_path: Path) -> None:
    files = {
        "harness/__init__.py": '"""Top."""\n',
        "harness/errors.py": "",
        "harness/pkg/__init__.py": '"""Pkg."""\nfrom . import a\nVALUE = 1\n',
        "harness/pkg/a.py": "from .b import X\n",
        "harness/pkg/b.py": "def f():\n    from .. import errors\n    from . import VALUE\nX = 1\n",
        "harness/other/__init__.py": '"""Other."""\n',
        "harness/other/c.py": "import harness.pkg.b\nfrom ..pkg import a\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    modules = _modules(tmp_path / "harness")

    def edges(name: str) -> set[str]:
        return import_targets(name, modules[name], modules)

    assert edges("harness.pkg") == {"harness.pkg.a"}
    assert edges("harness.pkg.a") == {"harness.pkg.b"}  # no edge to its own package
    assert edges("harness.pkg.b") == {"harness.errors", "harness.pkg"}  # lazy imports count
    assert edges("harness.other.c") == {"harness.pkg", "harness.pkg.a", "harness.pkg.b"}
    graph = {name: edges(name) for name in modules}
    assert import_cycles(graph) == [["harness.pkg", "harness.pkg.a", "harness.pkg.b"]]


@pytest.mark.parametrize("init", sorted(ROOT.rglob("__init__.py")), ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_package_init_says_what_lives_there(init: Path) -> None:
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")), clean=False)
    assert doc, f"{init}: start with a one-line docstring saying what lives in this folder"
    first, _, rest = doc.partition("\n")
    assert first.strip() and first == first.strip(), f"{init}: the docstring's first line is its summary"
    assert first.endswith("."), f"{init}: the summary line is a sentence ending with a period"
    assert not rest or rest.startswith("\n"), f"{init}: the summary is one line, then a blank line"


def test_top_level_is_small() -> None:
    top = {p.stem for p in ROOT.glob("*.py")}
    extra = sorted(top - TOP_LEVEL)
    assert not extra, f"modules directly in harness/ outside the allowed set {sorted(TOP_LEVEL)}: {extra}"
    missing = sorted(TOP_LEVEL - top)
    assert not missing, f"allowed top-level modules that no longer exist (update TOP_LEVEL): {missing}"
