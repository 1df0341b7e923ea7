"""rotlib's layers point one way: no import circle, and function-level imports only for heavy optional packages."""
import ast
import tomllib
from pathlib import Path

import pytest

import rotlib

PACKAGE = Path(rotlib.__file__).resolve().parent
# imported inside a function on purpose: heavy or optional packages that the command line and most notebooks never
# need (a plot, a widget, a table, an image decoder), so `import rotlib` and `python -m rotlib orient` stay light
LAZY_OK = {"matplotlib", "ipywidgets", "pandas", "PIL", "torchvision", "numpy", "gzip", "urllib", "selenium", "seaborn",
           "nbformat"}   # nbformat: a dev dependency, only `python -m rotlib.report requote` needs it


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _targets(module: str, node, is_package: bool, modules) -> list[str]:
    """The rotlib modules an import statement loads (``from . import x`` counts as module ``x``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[:len(base) - (node.level - 1)]
        parent = ".".join(base + ([node.module] if node.module else []))
    else:
        parent = node.module or ""
    return [f"{parent}.{a.name}" if f"{parent}.{a.name}" in modules else parent for a in node.names
            if f"{parent}.{a.name}" in modules or parent in modules]


def import_graph(modules=None) -> dict[str, set[str]]:
    """Every rotlib module -> the rotlib modules it imports (anywhere in the file)."""
    modules = modules or _modules()
    graph = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module] |= {t for t in _targets(module, node, path.name == "__init__.py", modules) if t != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module, or a module importing itself)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_rotlib_has_no_import_circle():
    found = circles(import_graph())
    assert not found, "import circles in rotlib (move the shared part into a lower module): " + \
        "; ".join(" <-> ".join(c) for c in found)


def test_the_circle_finder_finds_a_circle(tmp_path):
    """The check above could fail: two modules importing each other (the store importing the experiments that
    import the store, as before issue 30) are found."""
    pkg = tmp_path / "rotlib"
    (pkg / "experiments").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "store.py").write_text("def find():\n    from . import experiments as E\n")
    (pkg / "experiments" / "__init__.py").write_text("from .. import store\n")
    (pkg / "paper.py").write_text("from .experiments import store\n")
    assert circles(import_graph(_modules(pkg))) == [["rotlib.experiments", "rotlib.store"]]


def test_function_level_imports_only_keep_heavy_optional_packages_lazy():
    late = []
    for module, path in _modules().items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import):
                        late += [f"{module}: import {a.name}" for a in node.names if a.name.split(".")[0] not in LAZY_OK]
                    elif isinstance(node, ast.ImportFrom):
                        top = (node.module or "").split(".")[0]
                        if node.level or top not in LAZY_OK:
                            late.append(f"{module}: from {'.' * node.level}{node.module or ''} import ...")
    assert set(late) <= ALLOWED_LATE, sorted(set(late) - ALLOWED_LATE)


# rotlib modules imported inside a function, each for a heavy optional package it pulls in
ALLOWED_LATE = {
    "rotlib.orient.widget: from ..widgets import ...",      # ipywidgets: only the notebook widget needs it
    "rotlib.orient.figures: from ..plots import ...",       # matplotlib: only notebook 8's figures
}


def test_the_version_is_written_once():
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    if "version" in project:
        assert project["version"] == rotlib.__version__
    else:
        pytest.skip("pyproject.toml takes its version from rotlib")
