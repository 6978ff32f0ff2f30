"""The import direction of the packages: ``logging_data <- estimators <- bandit <- decoding <- CLI``.

The scripts of ``examples/`` sit on top: they may import every layer, no package imports them, and
none imports another example or touches ``sys.path`` (what two scripts share belongs in a package).

A module may import its own layer and the layers below it, never one above: not by ``import``
(at module level or inside a function) and not by naming it in a string ("pkg.mod:Class", which
``importlib`` would import). Plugins of a higher layer reach a lower one through entry points in
``pyproject.toml``. The CLI is ``bandit.cli``; it may import every layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("logging_data", "estimators", "bandit", "decoding", "cli")
HEAVY = ("torch", "transformers", "vowpalwabbit", "d3rlpy", "ray")


def _layer(module: str) -> str | None:
    if module == "bandit.cli" or module.startswith("bandit.cli."):
        return "cli"
    top = module.split(".")[0]
    return top if top in LAYERS else None


def _modules():
    for package in ("logging_data", "estimators", "bandit", "decoding"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _imports(module: str, path: Path):
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, "import"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                yield node.lineno, ".".join(base + ([node.module] if node.module else [])), "import"
            else:
                yield node.lineno, node.module or "", "import"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
            target = node.value.split(":")[0]
            if target.count(".") >= 1 and target.replace(".", "").replace("_", "").isalnum():
                yield node.lineno, target, "string"


MODULES = list(_modules())


def test_every_package_is_scanned():
    assert {_layer(m) for m, _ in MODULES} == set(LAYERS)


@pytest.mark.parametrize("module, path", MODULES, ids=[m for m, _ in MODULES])
def test_imports_point_down(module, path):
    me = _layer(module)
    upward = [(line, name, how) for line, name, how in _imports(module, path)
              if _layer(name) is not None and LAYERS.index(_layer(name)) > LAYERS.index(me)]
    assert not upward, f"{path.relative_to(ROOT)} ({me}) reaches up: " + "; ".join(
        f"line {line}: {how} {name} ({_layer(name)})" for line, name, how in upward)


@pytest.mark.parametrize("module, path", [(m, p) for m, p in MODULES if _layer(m) in ("logging_data", "estimators")],
                         ids=[m for m, _ in MODULES if _layer(m) in ("logging_data", "estimators")])
def test_the_bottom_layers_import_no_heavy_backend(module, path):
    heavy = [(line, name) for line, name, how in _imports(module, path) if how == "import" and name.split(".")[0] in HEAVY]
    assert not heavy, f"{path.relative_to(ROOT)} imports {heavy}"


def test_the_rule_catches_an_upward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from decoding.session import DecodingSession\nREG = 'bandit.runs:load_run'\n")
    found = [(name, how) for _, name, how in _imports("logging_data.x", bad)]
    assert ("decoding.session", "import") in found and ("bandit.runs", "string") in found


# -- examples/: thin scripts over the package ----------------------------------------------------
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
EXAMPLE_NAMES = {p.stem for p in EXAMPLES}


def _example_problems(path: Path) -> list[str]:
    """What makes ``path`` more than argparse plus calls into the package: ``sys.path`` (any use), an
    import of another example (``import heads``, ``from heads import``, ``importlib.import_module("heads")``,
    ``__import__``, ``runpy.run_path``/``run_module`` or ``spec_from_file_location`` of a sibling)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
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


def test_examples_are_scanned():
    assert len(EXAMPLES) >= 10 and "quickstart" in EXAMPLE_NAMES


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
