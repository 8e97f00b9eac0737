"""One home for each basic: guards on the code base itself (imports, constants, writers, docs)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("audiosr_core", "audiosr_adapters", "recipes")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of our packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """Absolute dotted name of a ``from X import ...`` in ``module``."""
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(module: str) -> list[tuple[str, list[str], bool]]:
    """``(target module, imported names, at module level)`` of every import of ``module``,
    function-level ones included (a cycle through a function is still a cycle)."""
    tree = ast.parse(MODULES[module].read_text())
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            names = [a.name for a in node.names]
            # "from . import audio" imports the module audiosr_core.audio
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            found += [(s, [], id(node) in top) for s in subs]
            found.append((target, [n for n in names if f"{target}.{n}" not in MODULES],
                          id(node) in top))
    return found


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, _names, _top in _imports(module):
            if target in MODULES and target != module:
                edges[module].add(target)
    return edges


def test_no_import_cycles():
    """No module imports (directly or through others, at any depth) a module importing it;
    imports inside functions count. Packages' ``__init__`` are left out: importing
    ``audiosr_core.x`` runs ``audiosr_core/__init__`` first by definition."""
    edges = {m: {t for t in ts if not MODULES[t].name == "__init__.py"}
             for m, ts in _edges().items() if MODULES[m].name != "__init__.py"}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_module():
    offenders = []
    for module in MODULES:
        for target, names, _top in _imports(module):
            if target in MODULES and target != module:
                offenders += [f"{module}: from {target} import {n}" for n in names
                              if n.startswith("_") and not n.startswith("__")]
    for path in sorted((REPO / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
                offenders += [f"tests/{path.name}: from {node.module} import {a.name}"
                              for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
        if re.search(r"import_module\(\s*['\"]audiosr_adapters\._", path.read_text()):
            offenders.append(f"tests/{path.name}: imports a private module")
    assert not offenders, "\n".join(offenders)


def _module_constants(path: Path) -> list[tuple[str, object]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(
                getattr(node, "value", None), ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out += [(t.id, node.value.value) for t in targets if isinstance(t, ast.Name)]
    return out


def test_the_48_khz_rate_has_one_name():
    """Only ``audiosr_core.rates`` defines a 48000 constant (everything imports SAMPLE_RATE)."""
    files = [*MODULES.values(), *sorted((REPO / "benchmarks").glob("*.py"))]
    found = [f"{p.relative_to(REPO)}: {name} = {value}" for p in files
             for name, value in _module_constants(p) if value == 48000]
    assert found == ["audiosr_core/rates.py: SAMPLE_RATE = 48000"], found


def test_one_atomic_writer():
    """Renames that publish a file happen in ``audiosr_core.atomic`` only."""
    pattern = re.compile(r"os\.replace\(|os\.rename\(|\.rename\(|\.replace\(tmp|mkstemp\(|"
                         r"mkdtemp\(")
    found = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in MODULES.values()
             if p.name != "atomic.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, "\n".join(found)


def test_one_output_length_formula():
    """No module computes a resampled length on its own (``round(n * 48000 / rate)``)."""
    pattern = re.compile(r"(round|ceil)\(\s*[\w.\[\]-]*(samples|frames|shape|\bn\b)[^)]*\*\s*"
                         r"(SAMPLE_RATE|48000|OUTPUT_RATE|TARGET)")
    found = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in MODULES.values()
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if pattern.search(line) and not line.lstrip().startswith(("#", ">>>"))]
    assert not found, "\n".join(found)


def test_recipes_and_benchmarks_do_not_edit_sys_path():
    files = [p for m, p in MODULES.items() if m.startswith("recipes")]
    files += sorted((REPO / "benchmarks").glob("*.py")) + sorted((REPO / "tests").glob("*.py"))
    found = [str(p.relative_to(REPO)) for p in files if p != Path(__file__)
             and re.search(r"sys\.path\.(insert|append)", p.read_text())]
    assert not found, found


@pytest.mark.parametrize("pattern", [r"DESIGN\.md", r"offline-data\.md", r"/work/",
                                     r"official-audiosr\.md",
                                     r"reference/parity/(?!dev|train-dev)"])
def test_docs_cite_nothing_outside_the_repository(pattern):
    """Docstrings and READMEs stand on their own: no pointers to files of a workplace."""
    files = sorted({*MODULES.values(), *(REPO / "benchmarks").glob("*"),
                    *REPO.rglob("README.md")})
    found = [f"{p.relative_to(REPO)}:{i}" for p in files
             if p.is_file() and ".venv" not in p.parts
             for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
             if re.search(pattern, line)]
    assert not found, found
