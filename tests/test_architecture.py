"""The import direction of the packages: ``logging_data <- estimators <- bandit <- decoding <- CLI``.

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
