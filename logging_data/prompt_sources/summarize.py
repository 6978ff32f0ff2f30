"""``summarize``: summarize the body of a module or class docstring (stdlib and installed PyPI packages)."""

from __future__ import annotations

import ast
from typing import Any

from .base import (Candidate, Listings, MAX_PROMPT_CHARS, SourceFile, Found, parse_python, prose_paragraphs,
                   split_docstring, words)


def summarize_candidates(src: SourceFile, module: str) -> list[Candidate]:
    tree = parse_python(src.path)
    if tree is None:
        return []
    nodes: list[tuple[str, str, ast.AST]] = [("module", module, tree)]
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            nodes.append(("class", f"{module}.{node.name}", node))
    out = []
    for kind, name, node in nodes:
        doc = ast.get_docstring(node)
        if not doc:
            continue
        summary, body = split_docstring(doc)
        paragraphs = prose_paragraphs(body)
        text, used = "", []
        for para in paragraphs:
            if words(text) + words(para) > 220:
                break
            used.append(para)
            text = "\n\n".join(used)
        if not (50 <= words(text) <= 220) or not (3 <= words(summary) <= 40) or len(text) > MAX_PROMPT_CHARS:
            continue
        if sum(ch.isalpha() for ch in text) < 0.6 * len(text):
            continue
        prompt = f"Summarize the following documentation of the Python {kind} `{name}` in one sentence.\n\n{text}"
        out.append(Candidate("summarize", prompt, summary, f"{src.key}:{kind}:{name}", f"{src.origin}:{src.path}:{name}"))
    return out


def find(listings: Listings, config: Any) -> Found:
    files, report = listings.stdlib()
    site, site_reports = listings.site()
    modules = {sf.path: mod for sf, mod in files}
    modules.update({sf.path: mod for sf, mod, _ in site})
    all_files = [sf for sf, _ in files] + [sf for sf, _, _ in site]
    return Found(all_files, lambda sf: summarize_candidates(sf, modules[sf.path]),
                  ([report] if report else []) + site_reports)
