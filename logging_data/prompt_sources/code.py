"""``code``: complete a function of the CPython standard library from its signature and docstring."""

from __future__ import annotations

import ast
from typing import Any

from .base import Candidate, Listings, SourceFile, Found, parse_python, words


def code_candidates(src: SourceFile, module: str, library: str = "standard library") -> list[Candidate]:
    """Functions of ``src`` to complete; ``library`` names where the module comes from in the prompt."""
    tree = parse_python(src.path)
    if tree is None:
        return []
    lines = src.path.read_text(encoding="utf-8").splitlines()
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("__"):
            continue
        doc = ast.get_docstring(node, clean=False)
        if not doc or len(node.body) < 2 or not isinstance(node.body[0], ast.Expr) or "deprecated" in doc.lower():
            continue
        if not (12 <= words(doc) <= 160):
            continue
        body_start = node.body[1].lineno - 1
        body_start = min([body_start] + [d.lineno - 1 for d in getattr(node.body[1], "decorator_list", [])])
        header_lines = lines[node.lineno - 1: node.body[0].end_lineno]
        body_lines = lines[body_start: node.end_lineno]
        if not (3 <= len(body_lines) <= 30) or not header_lines:
            continue
        indent = len(header_lines[0]) - len(header_lines[0].lstrip())
        header = "\n".join(ln[indent:] if ln[:indent].strip() == "" else ln for ln in header_lines)
        body = "\n".join(ln[indent:] if ln[:indent].strip() == "" else ln for ln in body_lines)
        if len(body) > 1200 or len(header) > 1000:
            continue
        prompt = (f"Complete the following Python function from the {library} module `{module}`. "
                  f"Write the rest of its body.\n\n```python\n{header}\n```")
        qual = f"{src.key}:{node.name}@{node.lineno}"
        out.append(Candidate("code", prompt, body, qual, f"{src.origin}:{src.path}:{node.name} (line {node.lineno})"))
    return out


def find(listings: Listings, config: Any) -> Found:
    files, report = listings.stdlib()
    modules = {sf.path: mod for sf, mod in files}
    return Found([sf for sf, _ in files], lambda sf: code_candidates(sf, modules[sf.path]), [report] if report else [])
