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
KNOWN_CYCLES: dict[frozenset[str], str] = {}  # none: add one only with the issue that removes it


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
    """The absolute module named by ``from <level dots><module> import ...`` inside ``package``."""
    if level == 0:
        return module or ""
    base = package.split(".")
    if level - 1 >= len(base):
        raise AssertionError(f"relative import beyond the top package from {package!r}")
    base = base[: len(base) - (level - 1)]
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


def shortest_cycle(start: str, graph: dict[str, set[str]]) -> list[str]:
    """A shortest import path from ``start`` back to itself (breadth first), ``[start, ..., start]``."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for dep in sorted(graph.get(node, ())):
                if dep == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if dep not in parent:
                    parent[dep] = node
                    nxt.append(dep)
        frontier = nxt
    return []


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    inside = set(component)
    sub = {a: graph[a] & inside for a in component}
    edges = [f"    {a} -> {b}" for a in component for b in sorted(sub[a])]
    example = " -> ".join(shortest_cycle(component[0], sub))
    return f"cycle among {', '.join(component)}\n  e.g. {example}\n  all edges inside it:\n" + "\n".join(edges)


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
    assert shortest_cycle("a", graph) == ["a", "b", "c", "a"]
    assert shortest_cycle("d", graph) == ["d", "d"]
    assert shortest_cycle("e", graph) == []


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


def init_docstring_problem(text: str) -> str | None:
    """Why a package ``__init__.py`` does not start with a one-line description, or None if it does.

    The docstring's first line is that description (a sentence ending in a period); more lines may
    follow after a blank line, as PEP 257 lays out a summary and a body.
    """
    doc = ast.get_docstring(ast.parse(text), clean=False)
    if not doc:
        return "start with a docstring saying in one line what lives in this folder"
    first, _, rest = doc.partition("\n")
    if not first.strip() or first != first.strip():
        return "put the one-line description on the docstring's first line"
    if not first.endswith("."):
        return "end the one-line description with a period"
    if rest and not rest.startswith("\n"):
        return "keep the description to one line, then a blank line before any more text"
    return None


@pytest.mark.parametrize("init", sorted(ROOT.rglob("__init__.py")), ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_package_init_says_what_lives_there(init: Path) -> None:
    problem = init_docstring_problem(init.read_text(encoding="utf-8"))
    assert problem is None, f"{init}: {problem}"


def test_init_docstring_check_can_fail() -> None:
    assert init_docstring_problem('"""Layers of the IR."""\nfrom . import a\n') is None
    assert init_docstring_problem('"""Layers of the IR.\n\nMore words.\n"""\n') is None
    assert init_docstring_problem("from . import a\n") is not None
    assert init_docstring_problem('"""\nLayers of the IR.\n"""\n') is not None
    assert init_docstring_problem('"""Layers of the IR,\nspread over two lines."""\n') is not None
    assert init_docstring_problem('"""Layers of the IR"""\n') is not None


def test_top_level_is_small() -> None:
    top = {p.stem for p in ROOT.glob("*.py")}
    extra = sorted(top - TOP_LEVEL)
    assert not extra, f"modules directly in harness/ outside the allowed set {sorted(TOP_LEVEL)}: {extra}"
    missing = sorted(TOP_LEVEL - top)
    assert not missing, f"allowed top-level modules that no longer exist (update TOP_LEVEL): {missing}"


def test_plugin_packages_exist() -> None:
    """:func:`harness.registry.load_all` names its packages as strings; each must be a package here."""
    from harness.registry import PLUGIN_PACKAGES

    modules = _modules()
    missing = [p for p in PLUGIN_PACKAGES if p not in modules or modules[p].name != "__init__.py"]
    assert not missing, f"PLUGIN_PACKAGES in harness/registry.py names packages that do not exist: {missing}"
