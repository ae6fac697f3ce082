"""The package's layout holds: few modules at the root, every import runs down the layers that the
README's "Layout" section draws, and no two modules import each other, directly or round a cycle.

Imports are read with :mod:`ast` (function-level and ``TYPE_CHECKING`` imports included), so the
test needs no import of the package and sees the imports a lazy ``import`` hides."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "isg_core"
#: the most modules directly under isg_core/ (the package's __init__ not counted)
MAX_ROOT_MODULES = 12


def module_name(path: Path, pkg: Path = PKG) -> str:
    """``isg_core.data.tiling`` for ``isg_core/data/tiling.py``; a package is its ``__init__``."""
    parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files(pkg: Path = PKG) -> dict[str, Path]:
    return {module_name(p, pkg): p for p in sorted(pkg.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package modules ``name`` imports: ``from a.b import c`` is ``a.b.c`` where that is a module,
    else ``a.b`` (the module, or the package's ``__init__``)."""
    tree = ast.parse(path.read_text())
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def import_graph(pkg: Path = PKG) -> dict[str, set[str]]:
    files = module_files(pkg)
    return {n: imports_of(n, p, set(files)) for n, p in files.items()}


def readme_layers(readme: Path = ROOT / "README.md") -> dict[str, int]:
    """The README's layering: the fenced block after "<!-- layers -->", one line per layer,
    ``N  unit, unit, ...  (what it is)``; a unit is a root module or a subpackage of isg_core."""
    text = readme.read_text()
    m = re.search(r"<!-- layers -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert m, "README.md has no '<!-- layers -->' block"
    layers = {}
    for line in m.group(1).splitlines():
        lm = re.match(r"\s*(\d+)\s+([\w_/, ]+?)(?:\s{2,}.*)?$", line)
        if lm:
            for unit in lm.group(2).split(","):
                layers[unit.strip().rstrip("/")] = int(lm.group(1))
    return layers


def unit_of(module: str) -> str:
    """The layer unit a module belongs to: its subpackage, or itself at the root."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layering_violations(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Every import of a unit at the same or a higher layer than the importer's (within a unit any
    import is allowed; :func:`cycles` catches the circles there)."""
    bad = []
    for a, targets in sorted(graph.items()):
        for b in sorted(targets):
            ua, ub = unit_of(a), unit_of(b)
            if ua != ub and layers[ub] >= layers[ua]:
                bad.append(f"{a} (layer {layers[ua]}) imports {b} (layer {layers[ub]})")
    return bad


# --- the checks work (constructed packages) ---------------------------------------------------------
def _fake(tmp_path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "isg_core"
    for rel, src in files.items():
        p = pkg / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(src)
    return pkg


def test_checks_find_a_cycle_and_an_upward_import(tmp_path):
    pkg = _fake(tmp_path, {"__init__.py": "", "errors.py": "from .data import tiling\n",
                           "data/__init__.py": "", "data/tiling.py": "def f():\n    from ..errors import X\n",
                           "data/slides.py": "from . import tiling\n"})
    g = import_graph(pkg)
    assert g["isg_core.data.slides"] == {"isg_core.data.tiling"}
    assert cycles(g) == [["isg_core.data.tiling", "isg_core.errors"]]
    assert layering_violations(g, {"__init__": 0, "errors": 0, "data": 1}) == [
        "isg_core.errors (layer 0) imports isg_core.data.tiling (layer 1)"]


def test_checks_pass_a_clean_package(tmp_path):
    pkg = _fake(tmp_path, {"__init__.py": "from .errors import E\n", "errors.py": "",
                           "data/__init__.py": "", "data/tiling.py": "import isg_core.errors\nfrom .. import errors\n"})
    g = import_graph(pkg)
    assert cycles(g) == [] and layering_violations(g, {"__init__": 1, "errors": 0, "data": 2}) == []


# --- the package ------------------------------------------------------------------------------------
def test_few_modules_at_the_root():
    root = [p.name for p in PKG.glob("*.py") if p.name != "__init__.py"]
    assert len(root) <= MAX_ROOT_MODULES, sorted(root)


def test_every_unit_has_a_layer_in_the_readme():
    layers = readme_layers()
    units = {unit_of(m) for m in module_files()}
    assert units <= set(layers), f"not in README's layers: {sorted(units - set(layers))}"
    assert set(layers) <= units, f"README names what is not there: {sorted(set(layers) - units)}"


def test_imports_run_down_the_layers():
    assert layering_violations(import_graph(), readme_layers()) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []
