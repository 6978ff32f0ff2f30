"""``questions``: what a command does (Debian man pages) or what a function of an installed PyPI
package does (its docstring's first sentence)."""

from __future__ import annotations

import ast
import gzip
import re
import zlib
from typing import Any

from .base import (Candidate, Listings, SourceFile, Found, clean_space, man_files, parse_python,
                   split_docstring, with_debian_origin, words)


def _first_sentence(text: str) -> str:
    text = clean_space(text)
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    return m.group(1) if m else text


def _docstring_question_candidates(src: SourceFile, module: str, distribution: str) -> list[Candidate]:
    tree = parse_python(src.path)
    if tree is None:
        return []
    out = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("_"):
            continue
        doc = ast.get_docstring(node)
        if not doc:
            continue
        answer = _first_sentence(split_docstring(doc)[0])
        if not (5 <= words(answer) <= 40) or answer.lower().startswith(("deprecated", "alias", "see ", "same as")):
            continue
        args = ast.unparse(node.args)
        if len(args) > 120:
            continue
        prompt = (f"In the Python package `{distribution}`, what does the function `{module}.{node.name}({args})` do? "
                  "Answer in one sentence.")
        out.append(Candidate("questions", prompt, answer, f"{src.key}:{node.name}",
                             f"{src.origin}:{src.path}:{node.name}"))
    return out


_TROFF = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\s[-+]?\d"), ""),  # size changes
    (re.compile(r"\\\*(\[[^\]]*\]|\(..|.)"), ""),  # strings
    (re.compile(r"\\\((em|en)"), "-"),
    (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\((oq|cq|aq)"), "'"),
    (re.compile(r"\\[-&/,|^]"), lambda m: "-" if m.group(0) == "\\-" else ""),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r'\\"'), ""),
]


def _troff_text(line: str) -> str:
    for pat, rep in _TROFF:
        line = pat.sub(rep, line)
    return line


def _man_name_line(text: str) -> tuple[str, str] | None:
    """(names, description) from a man page's NAME section (man or mdoc macros)."""
    lines = text.splitlines()
    if lines and lines[0].startswith(".so "):
        return None
    in_name, collected, nm, nd = False, [], [], None
    for line in lines:
        if re.match(r'^\.(SH|Sh)\s+"?(NAME|Name|name)"?\s*$', line):
            in_name = True
            continue
        if not in_name:
            continue
        if re.match(r"^\.(SH|Sh)\b", line):
            break
        if line.startswith(".Nm"):
            nm.append(_troff_text(line[3:]).strip().strip(","))
        elif line.startswith(".Nd"):
            nd = _troff_text(line[3:]).strip()
        elif line.startswith(("'", ".\\\"")) or (line.startswith(".") and len(line) < 4 and not line[1:].strip()):
            continue
        elif line.startswith("."):
            macro = line.split(None, 1)
            if macro[0] in (".B", ".I", ".BR", ".IR", ".RB") and len(macro) > 1:
                collected.append(_troff_text(macro[1]).replace('"', ""))
        else:
            collected.append(_troff_text(line))
    if nd is not None:
        return (", ".join(n for n in nm if n), nd) if nm else None
    joined = clean_space(" ".join(collected))
    m = re.match(r"^(.+?)\s+[-\u2013\u2014]+\s+(.+)$", joined)
    if not m:
        return None
    return m.group(1).strip(), m.group(2).strip()


def man_question_candidate(src: SourceFile) -> list[Candidate]:
    try:
        with gzip.open(src.path, "rb") as fh:
            raw = fh.read(200_000)
        text = raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError, zlib.error):
        return []
    parsed = _man_name_line(text)
    if parsed is None:
        return []
    names, description = parsed
    command = names.split(",")[0].strip()
    if not command or " " in command or "\\" in command or not (3 <= words(description) <= 30):
        return []
    if not re.search(r"[A-Za-z]{3}", description) or "\\" in description:
        return []
    prompt = f"What does the `{command}` command do on a Debian GNU/Linux system? Answer in one sentence."
    return [Candidate("questions", prompt, description, src.key, f"{src.origin}:{src.path}")]


def find(listings: Listings, config: Any) -> Found:
    site, site_reports = listings.site()
    man, man_reports = man_files(listings.roots, listings.dpkg)
    info = {sf.path: (mod, dist) for sf, mod, dist in site}

    def read(sf: SourceFile) -> list[Candidate]:
        if sf.key.startswith("man1:"):
            return man_question_candidate(with_debian_origin(sf, listings.dpkg))
        mod, dist = info[sf.path]
        return _docstring_question_candidates(sf, mod, dist)

    return Found([sf for sf, _, _ in site] + man, read, site_reports + man_reports)
