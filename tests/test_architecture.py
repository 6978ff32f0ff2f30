"""The shape of the code: which module may import which, and that nothing imports in a circle.

The packages are layered ``logging_data <- estimators <- bandit <- decoding <- CLI``; the scripts of
``examples/`` sit on top: they may import every layer, no package imports them, and none imports
another example or touches ``sys.path`` (what two scripts share belongs in a package).

An *import* here is every way Python code can reach a module of the project, wherever it is written
(module level, inside a function, under ``if TYPE_CHECKING:``): ``import a.b``, ``from a.b import c``
(which also reaches the module ``a.b.c`` when there is one: ``from bandit import cli``), the relative
forms (``from . import cli``, ``from ..x import y``), ``importlib.import_module("a.b")``,
``__import__("a.b")`` and ``runpy.run_module("a.b")`` with a literal name (a relative one resolved
against the importer), and a string naming a module's object (``"pkg.mod:Class"``, which a registry
hands to ``importlib``). Importing ``a.b.c`` also runs the packages ``a`` and ``a.b`` above it.

The rules:

- a module imports its own layer and the layers below it, never one above; plugins of a higher
  layer reach a lower one through entry points in ``pyproject.toml``. The CLI is ``bandit.cli``;
  it may import every layer. ``estimators`` imports nothing of the project but itself;
- the bottom layers import no heavy backend (torch, transformers, ...);
- no module reaches itself through its imports: the modules of the project (the packages and
  ``examples/``) import in no circle, however long, and however the imports are written. A
  circle is broken by moving what both sides share down into a module both import, never by
  hiding an import inside a function;
- no module imports a private name (``_x``) of another module of the project, by ``from m import _x``
  or as ``m._x`` of an imported module ``m``; a private module (``_common``) is its own package's.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("logging_data", "estimators", "bandit", "decoding", "cli")
PACKAGES = ("logging_data", "estimators", "bandit", "decoding")
HEAVY = ("torch", "transformers", "vowpalwabbit", "d3rlpy", "ray")
#: calls that import the module their first (literal) argument names
IMPORT_CALLS = ("import_module", "__import__", "run_module")


def _layer(module: str) -> str | None:
    if module == "bandit.cli" or module.startswith("bandit.cli."):
        return "cli"
    top = module.split(".")[0]
    return top if top in LAYERS else None


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


MODULES = list(_modules())
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
EXAMPLE_NAMES = {p.stem for p in EXAMPLES}
#: every module of the project, packages and examples: name -> file
PROJECT = {**dict(MODULES), **{f"examples.{p.stem}": p for p in EXAMPLES}}


def _package_of(module: str, path: Path) -> list[str]:
    """The package a relative import of ``module`` starts from (the module itself for an ``__init__``)."""
    parts = module.split(".")
    return parts if path.name == "__init__.py" else parts[:-1]


def _relative(module: str, path: Path, level: int, name: str | None) -> str:
    """The absolute name of ``from .{level}name import ...`` in ``module``."""
    base = _package_of(module, path)
    base = base[: len(base) - level + 1]
    return ".".join(base + ([name] if name else []))


@functools.lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    """The parsed file (each file of the tree is parsed once per session; a test's own files are new paths)."""
    return ast.parse(path.read_text(encoding="utf-8"))


def _imports(module: str, path: Path):
    """(line, module name, how) for every import of ``module`` (file ``path``), in every form the
    module docstring lists; ``how`` is "import", "call" (``import_module`` and the like) or "string"."""
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, "import"
        elif isinstance(node, ast.ImportFrom):
            base = _relative(module, path, node.level, node.module) if node.level else node.module or ""
            yield node.lineno, base, "import"
            for alias in node.names:  # ``from bandit import cli`` imports the module bandit.cli
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}" if base else alias.name, "import"
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            first = node.args[0] if node.args else None
            if name in IMPORT_CALLS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                target = first.value
                if target.startswith("."):  # relative to its package argument when literal, else to the importer's
                    level = len(target) - len(target.lstrip("."))
                    second = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "package"), None)
                    package = second.value.split(".") if isinstance(second, ast.Constant) and isinstance(second.value, str) \
                        else _package_of(module, path)
                    target = ".".join(package[: len(package) - level + 1] + ([target.lstrip(".")] if target.lstrip(".") else []))
                yield node.lineno, target, "call"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
            target = node.value.split(":")[0]
            if target.count(".") >= 1 and target.replace(".", "").replace("_", "").isalnum():
                yield node.lineno, target, "string"


def _project_module(name: str, project=PROJECT) -> str | None:
    """The deepest module of the project that ``name`` names (``a.b.C`` -> ``a.b``), or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in project:
            return ".".join(parts[:i])
    return None


def test_every_package_and_example_is_scanned():
    assert {_layer(m) for m, _ in MODULES} == set(LAYERS)
    assert len(EXAMPLES) >= 10 and "examples.quickstart" in PROJECT


def _upward(module: str, path: Path) -> list[tuple[int, str, str]]:
    me = _layer(module)
    return [(line, name, how) for line, name, how in _imports(module, path)
            if _layer(name) is not None and LAYERS.index(_layer(name)) > LAYERS.index(me)]


@pytest.mark.parametrize("module, path", MODULES, ids=[m for m, _ in MODULES])
def test_imports_point_down(module, path):
    upward = _upward(module, path)
    assert not upward, f"{path.relative_to(ROOT)} ({_layer(module)}) reaches up: " + "; ".join(
        f"line {line}: {how} {name} ({_layer(name)})" for line, name, how in upward)


def _outside_estimators(module: str, path: Path) -> list[tuple[int, str, str]]:
    return [(line, name, how) for line, name, how in _imports(module, path)
            if _layer(name) not in (None, "estimators") or name.split(".")[0] == "examples"]


@pytest.mark.parametrize("module, path", [(m, p) for m, p in MODULES if _layer(m) == "estimators"],
                         ids=[m for m, _ in MODULES if _layer(m) == "estimators"])
def test_estimators_import_nothing_of_the_project_but_themselves(module, path):
    """numpy and scikit-learn only: an estimator reads arrays, not logs (``estimators.batch`` is its own input type)."""
    found = _outside_estimators(module, path)
    assert not found, f"{path.relative_to(ROOT)} imports the project outside estimators: {found}"


#: decoding's ground floor: what the arm kinds, the build and the replays stand on imports nothing else of decoding
#: (pricing is the count model and cost profiles; timing a live session, decoding.calibrate, sits above the kinds)
DECODING_GROUND = ("decoding.pricing", "decoding.machine", "decoding.quiet")


def _decoding_imports(module: str, path: Path) -> list[tuple[int, str, str]]:
    return [(line, name, how) for line, name, how in _imports(module, path)
            if name.split(".")[0] == "decoding" and _project_module(name) not in (None, "decoding", module)]


@pytest.mark.parametrize("module", DECODING_GROUND)
def test_the_ground_floor_of_decoding_imports_nothing_else_of_it(module):
    found = _decoding_imports(module, PROJECT[module])
    assert not found, f"{module} is decoding's ground floor; it imports {found}"


def test_the_ground_floor_rule_catches_a_function_local_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f(arm):\n    from .arms import kind_of\n    return kind_of(arm)\n")
    assert [name for _, name, _ in _decoding_imports("decoding.pricing", bad)] == ["decoding.arms", "decoding.arms.kind_of"]


def _heavy(module: str, path: Path) -> list[tuple[int, str]]:
    return [(line, name) for line, name, how in _imports(module, path) if how != "string" and name.split(".")[0] in HEAVY]


@pytest.mark.parametrize("module, path", [(m, p) for m, p in MODULES if _layer(m) in ("logging_data", "estimators")],
                         ids=[m for m, _ in MODULES if _layer(m) in ("logging_data", "estimators")])
def test_the_bottom_layers_import_no_heavy_backend(module, path):
    heavy = _heavy(module, path)
    assert not heavy, f"{path.relative_to(ROOT)} imports {heavy}"


@pytest.mark.parametrize("module, source, found", [
    ("logging_data.x", "def f():\n    from decoding.session import DecodingSession\n", ("decoding.session", "import")),
    ("logging_data.x", "REG = 'bandit.runs:load_run'\n", ("bandit.runs", "string")),
    ("logging_data.x", "from bandit import cli\n", ("bandit.cli", "import")),
    ("bandit.x", "from . import cli\n", ("bandit.cli", "import")),
    ("bandit.policies.x", "def f():\n    from .. import cli\n", ("bandit.cli", "import")),
    ("bandit.policies.x", "from ..cli.main import cli\n", ("bandit.cli.main", "import")),
    ("logging_data.x", "import importlib\nm = importlib.import_module('decoding.session')\n", ("decoding.session", "call")),
    ("logging_data.x", "from importlib import import_module\ndef f():\n    return import_module('bandit.cli.main')\n",
     ("bandit.cli.main", "call")),
    ("logging_data.x", "m = __import__('decoding.build')\n", ("decoding.build", "call")),
    ("logging_data.x", "import importlib\nm = importlib.import_module('.session', 'decoding')\n", ("decoding.session", "call")),
    ("decoding.arms.x", "import importlib\nm = importlib.import_module('..session', __package__)\n", ("decoding.session", "call")),
    ("logging_data.x", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from decoding.models import ArmConfig\n",
     ("decoding.models", "import")),
])
def test_the_rule_sees_every_import_form(tmp_path, module, source, found):
    bad = tmp_path / "x.py"
    bad.write_text(source)
    assert found in [(name, how) for _, name, how in _imports(module, bad)]


def test_the_rule_catches_an_upward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from bandit import cli\nimport importlib\nm = importlib.import_module('decoding.session')\n")
    assert {_layer(name) for _, name, _ in _upward("bandit.x", bad)} == {"cli", "decoding"}
    assert {_layer(name) for _, name, _ in _outside_estimators("estimators.x", bad)} == {"bandit", "cli", "decoding"}


def test_the_estimators_rule_catches_even_the_layer_below(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from logging_data import Arm\n")
    assert _upward("estimators.x", bad) == [] and _outside_estimators("estimators.x", bad)


def test_the_heavy_rule_catches_a_backend_imported_by_name(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("import importlib\ndef f():\n    return importlib.import_module('torch.nn')\nfrom transformers import AutoModel\n")
    assert {name.split(".")[0] for _, name in _heavy("logging_data.x", bad)} == {"torch", "transformers"}


# -- no circles --------------------------------------------------------------------------------------
def _graph(project=PROJECT) -> dict[str, dict[str, tuple[int, str]]]:
    """module -> {module it imports: (line, how)}: every import form, resolved to the project's
    deepest module, plus the packages above it that importing it runs (not the importer's own)."""
    graph: dict[str, dict[str, tuple[int, str]]] = {m: {} for m in project}
    for module, path in project.items():
        for line, name, how in _imports(module, path):
            target = _project_module(name, project)
            if target is None:
                continue
            parts = target.split(".")
            reached = [target] + [".".join(parts[:i]) for i in range(1, len(parts))]
            for t in reached:
                if t in project and t != module and not (module + ".").startswith(t + "."):
                    graph[module].setdefault(t, (line, how))
    return graph


def _cycles(graph: dict[str, dict[str, tuple[int, str]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's, without recursion), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _describe(cycle: list[str], graph, project=PROJECT) -> str:
    inside = set(cycle)
    edges = [f"{_where(project[m])}:{line} {how} {t}" for m in cycle for t, (line, how) in sorted(graph[m].items()) if t in inside]
    return f"{len(cycle)} modules import each other ({', '.join(cycle)}): " + "; ".join(edges)


def test_no_module_imports_itself_through_a_circle():
    graph = _graph()
    cycles = _cycles(graph)
    assert not cycles, "import circles (move what both sides share down into a module both import):\n" + "\n".join(
        _describe(c, graph) for c in cycles)


def _fake_project(tmp_path, files: dict[str, str]) -> dict[str, Path]:
    project = {}
    for module, source in files.items():
        is_package = module.endswith(".__init__")
        name = module.removesuffix(".__init__")
        path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        project[name] = path
        assert is_package == (path.name == "__init__.py")
    return project


@pytest.mark.parametrize("files, cycle", [
    ({"pkg.__init__": "", "pkg.a": "def f():\n    from .b import g\n", "pkg.b": "from pkg import a\n"}, ["pkg.a", "pkg.b"]),
    ({"pkg.__init__": "", "pkg.a": "import importlib\nm = importlib.import_module('pkg.b')\n",
      "pkg.b": "from . import c\n", "pkg.c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import X\n"},
     ["pkg.a", "pkg.b", "pkg.c"]),
    ({"pkg.__init__": "", "pkg.reg": "TABLE = {'x': 'pkg.plug:Plug'}\n", "pkg.plug": "from pkg.reg import TABLE\n"},
     ["pkg.plug", "pkg.reg"]),
    # importing pkg.sub.b runs pkg/sub/__init__.py, which imports pkg.a
    ({"pkg.__init__": "", "pkg.a": "from .sub.b import g\n", "pkg.sub.__init__": "from ..a import f\n", "pkg.sub.b": ""},
     ["pkg.a", "pkg.sub"]),
])
def test_the_circle_rule_catches_a_circle(tmp_path, files, cycle):
    project = _fake_project(tmp_path, files)
    graph = _graph(project)
    assert _cycles(graph) == [cycle]
    assert all(m in _describe(cycle, graph, project) for m in cycle)


def test_the_circle_rule_passes_imports_that_point_one_way(tmp_path):
    project = _fake_project(tmp_path, {"pkg.__init__": "from .a import f\n", "pkg.a": "from .b import g\nfrom . import c\n",
                                       "pkg.b": "import pkg.c\n", "pkg.c": "import os\n"})
    assert _cycles(_graph(project)) == []


# -- no private names across modules ---------------------------------------------------------------
def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_imports(module: str, path: Path, project=PROJECT) -> list[str]:
    """What ``module`` takes that another module of the project keeps private: ``from m import _x``,
    ``m._x`` of a module ``m`` it imported, or a private module (``a._m``) from outside its package ``a``."""
    tree = _tree(path)
    found = []
    bound: dict[str, str] = {}  # local name -> the project module it is

    def outside(dotted: str, line: int) -> None:  # a private module of a package ``module`` is not in
        parts = dotted.split(".")
        for i, part in enumerate(parts):
            if _private(part) and not (module + ".").startswith(".".join(parts[:i]) + "."):
                found.append(f"line {line}: the private module {'.'.join(parts[:i + 1])}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _project_module(alias.name, project):
                    outside(alias.name, node.lineno)
                    bound[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _relative(module, path, node.level, node.module) if node.level else node.module or ""
            if not _project_module(base, project):
                continue
            outside(base, node.lineno)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in project:  # a module: private only to code outside its package
                    outside(full, node.lineno)
                    bound[alias.asname or alias.name] = full
                elif _private(alias.name):
                    found.append(f"line {node.lineno}: from {base} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            try:
                owner = ast.unparse(node.value)
            except Exception:  # pragma: no cover
                continue
            if owner in bound and bound[owner] != module:
                found.append(f"line {node.lineno}: {bound[owner]}.{node.attr}")
    return found


@pytest.mark.parametrize("module, path", list(PROJECT.items()), ids=list(PROJECT))
def test_no_module_imports_a_private_name_of_another(module, path):
    found = _private_imports(module, path)  # no exceptions: a name another module needs is public where it is defined
    assert not found, (f"{path.relative_to(ROOT)} takes private names of other modules (make the name public where it "
                       f"is defined, or move it): " + "; ".join(found))


@pytest.mark.parametrize("source, problem", [
    ("from decoding.loading import _source\n", "from decoding.loading import _source"),
    ("def f():\n    from ..loading import _source as s\n", "from decoding.loading import _source"),
    ("from decoding import loading\nloading._source('x')\n", "decoding.loading._source"),
    ("import decoding.loading as L\nL._source('x')\n", "decoding.loading._source"),
    ("import decoding.loading\ndecoding.loading._source('x')\n", "decoding.loading._source"),
    ("from bandit.cli._common import x\n", "the private module bandit.cli._common"),
    ("from bandit.cli import _common\n", "the private module bandit.cli._common"),
])
def test_the_private_rule_catches(tmp_path, source, problem):
    bad = tmp_path / "x.py"
    bad.write_text(source)
    found = _private_imports("decoding.arms.x", bad)
    assert any(problem in f for f in found), found


def test_the_private_rule_passes_public_names_dunders_and_a_packages_own_private_module(tmp_path):
    good = tmp_path / "x.py"
    good.write_text("from decoding.loading import load_model, __doc__\nfrom . import _common\nfrom ._common import helper\n"
                    "import decoding.loading as L\nL.load_model('x')\nself._cache = 1\n")
    assert _private_imports("bandit.cli.x", good) == []


# -- examples/: thin scripts over the package ----------------------------------------------------


def _example_problems(path: Path) -> list[str]:
    """What makes ``path`` more than argparse plus calls into the package: ``sys.path`` (any use), an
    import of another example (``import heads``, ``from heads import``, ``importlib.import_module("heads")``,
    ``__import__``, ``runpy.run_path``/``run_module`` or ``spec_from_file_location`` of a sibling)."""
    tree = _tree(path)
    found = []

    def sibling(name: str) -> bool:
        stem = Path(name).stem if name.endswith(".py") else name.split(".")[0]
        return stem in EXAMPLE_NAMES or name.startswith("examples.") or "examples/" in name

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys":
            found.append(f"line {node.lineno}: uses sys.path")
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "path" for a in node.names):
            found.append(f"line {node.lineno}: imports sys.path")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name} (an example)" for a in node.names if sibling(a.name)]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module and sibling(node.module):
            found.append(f"line {node.lineno}: from {node.module} import ... (an example)")
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append(f"line {node.lineno}: a relative import (examples are scripts, not a package)")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__", "run_path", "run_module", "spec_from_file_location"):
                args = [a for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if any(sibling(a.value) for a in args) or (name in ("run_path", "spec_from_file_location") and not args):
                    found.append(f"line {node.lineno}: {name}(...) of another example")
    return found


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_an_example_imports_no_example_and_no_sys_path(path):
    problems = _example_problems(path)
    assert not problems, f"examples/{path.name}: " + "; ".join(problems) + " (shared code belongs in the package)"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_sit_on_top(path):
    """An example may import every layer, the CLI included; no package names an example (an import or a "examples.x:f" string)."""
    upward = [(line, name) for line, name, _ in _imports(f"examples.{path.stem}", path) if name.split(".")[0] == "examples"]
    assert not upward, f"examples/{path.name} imports examples as a package: {upward}"


@pytest.mark.parametrize("module, path", MODULES, ids=[m for m, _ in MODULES])
def test_no_package_imports_an_example(module, path):
    bad = [(line, name) for line, name, _ in _imports(module, path) if name.split(".")[0] == "examples" or name in EXAMPLE_NAMES]
    assert not bad, f"{path.relative_to(ROOT)} reaches the examples: {bad}"


@pytest.mark.parametrize("source, problem", [
    ("import sys\nsys.path.insert(0, 'x')\n", "uses sys.path"),
    ("from sys import path\n", "imports sys.path"),
    ("import heads\n", "import heads (an example)"),
    ("import heads as ex\n", "import heads (an example)"),
    ("from heads import plain_rows\n", "from heads import"),
    ("def f():\n    import quickstart\n", "import quickstart"),
    ("import importlib\nm = importlib.import_module('heads')\n", "import_module(...) of another example"),
    ("m = __import__('bench_loop')\n", "__import__(...) of another example"),
    ("import runpy\nrunpy.run_path('examples/heads.py')\n", "run_path(...) of another example"),
    ("import runpy\nrunpy.run_path(str(HERE / 'heads.py'))\n", "run_path(...) of another example"),
    ("import runpy\nrunpy.run_module('quickstart')\n", "run_module(...) of another example"),
    ("from . import heads\n", "a relative import"),
])
def test_the_example_rule_catches(tmp_path, source, problem):
    bad = tmp_path / "x.py"
    bad.write_text(source)
    assert any(problem in p for p in _example_problems(bad)), _example_problems(bad)


def test_the_example_rule_passes_package_calls(tmp_path):
    good = tmp_path / "x.py"
    good.write_text("import argparse\nfrom decoding.drafters.heads_run import run_heads\nfrom decoding import heads\n"
                    "import importlib\nm = importlib.import_module('decoding.session')\n")
    assert _example_problems(good) == []


def _long_examples_named_in_benchmarks() -> set[str]:
    """The examples the 'Benchmark commands' section of BENCHMARKS.md names in its table of long ones."""
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    start = text.index("## Benchmark commands")
    section = text[start:text.index("\n## ", start + 1)]
    return {line.split("`examples/")[1].split("`")[0] for line in section.splitlines() if line.startswith("| `examples/")}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_an_example_is_short_or_says_why(path):
    """At most 200 lines, or research only: named in BENCHMARKS.md's 'Benchmark commands' and saying so in its docstring."""
    n_lines = len(path.read_text(encoding="utf-8").splitlines())
    if n_lines <= 200:
        return
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert path.name in _long_examples_named_in_benchmarks() and "Research only" in doc, (
        f"examples/{path.name} has {n_lines} lines (at most 200): move what it shares into the package, or name it in "
        "BENCHMARKS.md's 'Benchmark commands' table and say 'Research only' and why in its docstring")
