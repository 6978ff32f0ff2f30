"""A multi-domain prompt set, built offline from real text that ships on this machine.

Nothing is written by hand and nothing is downloaded: every prompt is made from text that a
Python, PyPI or Debian package installed here carries, and every prompt records where it came
from. The domains differ in nature, which is what makes the choice of draft matter:

- ``code``: complete a function of the CPython standard library from its signature and
  docstring (the stdlib ``.py`` sources); reference = the real body. The output re-uses the
  prompt's names, so prompt lookup decoding can help.
- ``translate``: English -> German / French / Spanish / Italian, from the gettext ``.mo``
  catalogs of Debian packages (``/usr/share/locale/<lang>/LC_MESSAGES``); reference = the
  catalog's own translation. Little to copy.
- ``summarize``: summarize the body of a module or class docstring (stdlib and installed
  PyPI packages); reference = the docstring's own summary line. Copies from its input.
- ``questions``: short open questions — what a command does (the NAME line of the Debian man
  pages in ``/usr/share/man/man1``) or what a function of an installed PyPI package does (its
  docstring's first sentence); reference = that line. Almost nothing to copy.

Reproducible: candidates are visited in an order drawn from ``numpy.random.default_rng`` seeded
by ``(seed, domain)``, so the same seed on the same machine gives byte-identical output. Each
domain takes at most a few prompts per source file, for variety. Splits (train / validation /
test) are drawn per domain (stratified) with the same kind of seeded generator.

A missing source (no locale folder, no man pages, ...) is reported and skipped; a domain with no
source at all is left out and listed in the metadata's ``skipped`` field.

Output: a Parquet file with the columns ``query_id`` (a stable hash of domain, source and prompt
text), ``prompt``, ``domain``, ``split``, ``x_source`` and ``x_reference`` (null when none), and
the build's metadata (settings, and every source with its package, version and licence) both in
the Parquet footer under the key ``draftpick_prompts`` and in a sidecar ``<name>.sources.json``.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import os
import platform
import re
import struct
import sysconfig
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from .files import atomic_write

DOMAINS: tuple[str, ...] = ("code", "translate", "summarize", "questions")
LANGUAGES: dict[str, str] = {"de": "German", "fr": "French", "es": "Spanish", "it": "Italian"}
#: names of every language a ``translate`` prompt may target; ``LANGUAGES`` (the default set) and
#: more, for sets built from other catalogs (e.g. the held-out set of ``examples/make_heldout.py``)
LANGUAGE_NAMES: dict[str, str] = {**LANGUAGES, "pt": "Portuguese", "nl": "Dutch", "pl": "Polish", "sv": "Swedish",
                                  "da": "Danish", "fi": "Finnish", "cs": "Czech", "ro": "Romanian"}
SPLIT_NAMES: tuple[str, str, str] = ("train", "validation", "test")
PROMPT_COLUMNS: tuple[str, ...] = ("query_id", "prompt", "domain", "split", "x_source", "x_reference")
METADATA_KEY = b"draftpick_prompts"
PROMPTS_FORMAT_VERSION = "1.0"
MAX_PROMPT_CHARS = 1400  # ~300 SmolLM2 tokens for prose; code is held shorter below

_SKIP_DIRS = {"__pycache__", "test", "tests", "idle_test", "testing", "site-packages", "dist-packages",
              "ensurepip", "turtledemo", "_vendor", "vendor", "vendored", "_distutils", "benchmarks"}


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class PromptSetConfig:
    """What to build.

    per_domain: at most this many prompts per domain (fewer when the machine has fewer).
    seed: the seed of every random choice (visiting order, choice within a file, splits).
    domains: which domains, from ``DOMAINS``.
    split: fractions of each domain for train, validation, test; non-negative, summing to 1.
    languages: target languages of ``translate``, from ``LANGUAGES``.
    per_source: at most this many prompts from one source file (catalog, module, man page).
    """

    per_domain: int = 200
    seed: int = 0
    domains: tuple[str, ...] = DOMAINS
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    languages: tuple[str, ...] = tuple(LANGUAGES)
    per_source: int = 2

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if isinstance(self.per_domain, bool) or not isinstance(self.per_domain, int) or self.per_domain < 1:
            raise ValueError(f"`per_domain` must be an integer >= 1; got {self.per_domain!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"`seed` must be an integer >= 0; got {self.seed!r}")
        if isinstance(self.per_source, bool) or not isinstance(self.per_source, int) or self.per_source < 1:
            raise ValueError(f"`per_source` must be an integer >= 1; got {self.per_source!r}")
        if not self.domains:
            raise ValueError(f"`domains` must name at least one of {', '.join(DOMAINS)}; got none")
        unknown = [d for d in self.domains if d not in DOMAINS]
        if unknown:
            raise ValueError(f"unknown domain {unknown[0]!r} in `domains`; known: {', '.join(DOMAINS)}")
        if len(set(self.domains)) != len(self.domains):
            raise ValueError(f"`domains` must not repeat a domain; got {', '.join(self.domains)}")
        bad_lang = [lang for lang in self.languages if lang not in LANGUAGES]
        if not self.languages or bad_lang:
            raise ValueError(f"`languages` must be among {', '.join(LANGUAGES)}; got {', '.join(self.languages) or 'none'}")
        split = tuple(self.split)
        if len(split) != 3:
            raise ValueError(f"`split` must be 3 fractions (train, validation, test); got {len(split)}: {split}")
        if any(not isinstance(f, (int, float)) or isinstance(f, bool) or not np.isfinite(f) or f < 0 for f in split):
            raise ValueError(f"`split` fractions must be finite and >= 0; got {split}")
        if abs(sum(split) - 1.0) > 1e-6:
            raise ValueError(f"`split` fractions must sum to 1; got {split} (sum {sum(split):g})")
        if split[0] <= 0:
            raise ValueError(f"`split` must give the train split a positive share; got {split}")


def _default_site_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    dirs = {Path(paths["purelib"]), Path(paths["platlib"])}
    return tuple(sorted(dirs))


@dataclass(frozen=True)
class SourceRoots:
    """Where the builder looks. Point any of these at an empty folder to leave that source out.

    stdlib_dir: the CPython standard library sources (``code``, ``summarize``).
    site_dirs: site-packages folders of installed PyPI packages (``summarize``, ``questions``).
    locale_dir: gettext catalogs, ``<locale_dir>/<lang>/LC_MESSAGES/*.mo`` (``translate``).
    man_dir: man pages, ``<man_dir>/man1/*.1.gz`` (``questions``).
    dpkg_dir: the dpkg database, to name the Debian package (and version) of a file.
    """

    stdlib_dir: Path = Path(sysconfig.get_paths()["stdlib"])
    site_dirs: tuple[Path, ...] = field(default_factory=_default_site_dirs)
    locale_dir: Path = Path("/usr/share/locale")
    man_dir: Path = Path("/usr/share/man")
    dpkg_dir: Path = Path("/var/lib/dpkg")

    def to_json(self) -> dict:
        return {"stdlib_dir": str(self.stdlib_dir), "site_dirs": [str(p) for p in self.site_dirs],
                "locale_dir": str(self.locale_dir), "man_dir": str(self.man_dir), "dpkg_dir": str(self.dpkg_dir)}


# --------------------------------------------------------------------------------------------
# where a file comes from: Debian package, PyPI distribution, or CPython


class DpkgIndex:
    """File -> (Debian package, version), read from the dpkg database on first use.

    Only files under ``prefixes`` are indexed (the locale catalogs and man pages by default).
    """

    def __init__(self, dpkg_dir: Path, prefixes: tuple[str, ...] = ("/usr/share/locale/", "/usr/share/man/")):
        self.dpkg_dir = Path(dpkg_dir)
        self.prefixes = tuple(prefixes)
        self._owner: dict[str, str] | None = None
        self._version: dict[str, str] = {}

    def _load(self) -> None:
        owner: dict[str, str] = {}
        info = self.dpkg_dir / "info"
        if info.is_dir():
            for lst in sorted(info.glob("*.list")):
                pkg = lst.name[: -len(".list")].split(":")[0]
                try:
                    for line in lst.read_text(encoding="utf-8", errors="replace").splitlines():
                        if line.startswith(self.prefixes):
                            owner.setdefault(line, pkg)
                except OSError:
                    continue
        status = self.dpkg_dir / "status"
        if status.is_file():
            pkg = None
            for line in status.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Package: "):
                    pkg = line[9:].strip()
                elif line.startswith("Version: ") and pkg is not None:
                    self._version.setdefault(pkg, line[9:].strip())
        self._owner = owner

    def package(self, path: Path) -> tuple[str | None, str | None]:
        if self._owner is None:
            self._load()
        owner = self._owner or {}
        pkg = owner.get(str(path))
        if pkg is None:
            try:
                pkg = owner.get(str(Path(path).resolve()))
            except OSError:
                pkg = None
        return pkg, (self._version.get(pkg) if pkg else None)

    def licence_file(self, package: str | None) -> str | None:
        if not package:
            return None
        p = Path("/usr/share/doc") / package / "copyright"
        return str(p) if p.is_file() else None


class DistIndex:
    """Top-level module folder in a site-packages dir -> (PyPI distribution, version, licence)."""

    def __init__(self, site_dirs: Sequence[Path]):
        self.site_dirs = tuple(site_dirs)
        self._top: dict[str, tuple[str, str, str | None]] | None = None

    def _load(self) -> None:
        from importlib.metadata import distributions

        top: dict[str, tuple[str, str, str | None]] = {}
        for site in self.site_dirs:
            if not Path(site).is_dir():
                continue
            found = []
            for dist in distributions(path=[str(site)]):
                meta = dist.metadata  # parsed once: each access to dist.metadata re-reads the file
                found.append((meta["Name"] or "?", meta["Version"] or "?", meta, dist))
            for name, version, meta, dist in sorted(found, key=lambda t: (t[0], t[1])):
                lic = meta.get("License-Expression") or meta.get("License") or None
                if not lic or len(lic) > 80 or "\n" in lic:
                    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                                   if c.startswith("License ::")]
                    lic = "; ".join(classifiers) or (lic.splitlines()[0][:80] if lic else None)
                record = dist.read_text("RECORD") or ""  # "path,hash,size" per installed file
                for first in {line.split("/", 1)[0] for line in record.splitlines() if "/" in line.split(",", 1)[0]}:
                    if first.isidentifier():
                        top.setdefault(first, (name, version, lic))
        self._top = top

    def distribution(self, top_level: str) -> tuple[str, str, str | None] | None:
        if self._top is None:
            self._load()
        return (self._top or {}).get(top_level)


# --------------------------------------------------------------------------------------------
# candidates


@dataclass(frozen=True)
class Candidate:
    """One possible prompt: its text, the reference answer, and where it came from.

    key: a machine-independent name of the source (e.g. ``stdlib:json/__init__.py:dumps``), part
    of ``query_id``; source: the full description stored in ``x_source``.
    """

    domain: str
    prompt: str
    reference: str | None
    key: str
    source: str


@dataclass(frozen=True)
class SourceFile:
    """A file to read candidates from, and how to describe its origin."""

    path: Path
    key: str  # machine-independent name
    origin: str  # package and version, for x_source
    extra: tuple[tuple[str, str], ...] = ()  # e.g. (("lang", "de"),)

    @property
    def group(self) -> str:
        """The kind of source (``stdlib``, ``pypi``, ``man1``, ``locale:de``): sampling alternates between them."""
        head = self.key.split(":", 2)
        return ":".join(head[:2]) if head[0] == "locale" else head[0]


def _words(text: str) -> int:
    return len(text.split())


def _clean_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _walk_py(root: Path, skip_top: Iterable[str] = ()) -> list[Path]:
    """Every ``.py`` file under ``root`` (sorted), outside test and vendored folders."""
    out: list[Path] = []
    if not root.is_dir():
        return out
    skip_top = set(skip_top)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith((".", "_"))
                             and not d.endswith((".dist-info", ".egg-info", ".data"))
                             and not (rel == Path(".") and d in skip_top) and d.isidentifier())
        for name in sorted(filenames):
            if name.endswith(".py") and not name.startswith("test_") and name != "setup.py":
                out.append(Path(dirpath) / name)
    return out


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def _split_docstring(doc: str) -> tuple[str, str]:
    """(summary line, body) of a PEP 257 docstring; the body with its paragraphs joined."""
    doc = doc.strip()
    parts = re.split(r"\n\s*\n", doc, maxsplit=1)
    summary = _clean_space(parts[0])
    body = parts[1] if len(parts) > 1 else ""
    return summary, body


def _prose_paragraphs(body: str) -> list[str]:
    """Paragraphs of plain prose: drop code examples, tables, parameter lists and markup-heavy ones."""
    out = []
    for para in re.split(r"\n\s*\n", body):
        lines = [ln.strip() for ln in para.strip().splitlines()]
        if not lines:
            continue
        if any(ln.startswith((">>>", "...", "$ ", "|", "+-", "..", "::", "--", "==", "*", "-", "#", ":", "@"))
               or ln.endswith(("::", ":")) for ln in lines):
            break  # examples, lists, sections: stop at the first one
        text = " ".join(lines)
        if re.fullmatch(r"[A-Z][A-Za-z ]*:?", text) or "----" in text:
            break  # a numpydoc section header
        out.append(text)
    return out


# --- code ---------------------------------------------------------------------------------


def _code_candidates(src: SourceFile, module: str, library: str = "standard library") -> list[Candidate]:
    """Functions of ``src`` to complete; ``library`` names where the module comes from in the prompt."""
    tree = _parse(src.path)
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
        if not (12 <= _words(doc) <= 160):
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


# --- summarize ----------------------------------------------------------------------------


def _summarize_candidates(src: SourceFile, module: str) -> list[Candidate]:
    tree = _parse(src.path)
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
        summary, body = _split_docstring(doc)
        paragraphs = _prose_paragraphs(body)
        text, used = "", []
        for para in paragraphs:
            if _words(text) + _words(para) > 220:
                break
            used.append(para)
            text = "\n\n".join(used)
        if not (50 <= _words(text) <= 220) or not (3 <= _words(summary) <= 40) or len(text) > MAX_PROMPT_CHARS:
            continue
        if sum(ch.isalpha() for ch in text) < 0.6 * len(text):
            continue
        prompt = f"Summarize the following documentation of the Python {kind} `{name}` in one sentence.\n\n{text}"
        out.append(Candidate("summarize", prompt, summary, f"{src.key}:{kind}:{name}", f"{src.origin}:{src.path}:{name}"))
    return out


# --- questions ----------------------------------------------------------------------------


def _first_sentence(text: str) -> str:
    text = _clean_space(text)
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    return m.group(1) if m else text


def _docstring_question_candidates(src: SourceFile, module: str, distribution: str) -> list[Candidate]:
    tree = _parse(src.path)
    if tree is None:
        return []
    out = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("_"):
            continue
        doc = ast.get_docstring(node)
        if not doc:
            continue
        answer = _first_sentence(_split_docstring(doc)[0])
        if not (5 <= _words(answer) <= 40) or answer.lower().startswith(("deprecated", "alias", "see ", "same as")):
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
    joined = _clean_space(" ".join(collected))
    m = re.match(r"^(.+?)\s+[-\u2013\u2014]+\s+(.+)$", joined)
    if not m:
        return None
    return m.group(1).strip(), m.group(2).strip()


def _man_question_candidate(src: SourceFile) -> list[Candidate]:
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
    if not command or " " in command or "\\" in command or not (3 <= _words(description) <= 30):
        return []
    if not re.search(r"[A-Za-z]{3}", description) or "\\" in description:
        return []
    prompt = f"What does the `{command}` command do on a Debian GNU/Linux system? Answer in one sentence."
    return [Candidate("questions", prompt, description, src.key, f"{src.origin}:{src.path}")]


# --- translate ----------------------------------------------------------------------------


def read_mo(path: Path) -> dict[str, str]:
    """The msgid -> msgstr pairs of a gettext ``.mo`` file (either byte order).

    Plural entries and entries with a context (msgctxt) are left out; the header (the empty
    msgid) gives the charset. Raises ValueError for a file that is not a ``.mo`` catalog.
    """
    data = Path(path).read_bytes()
    if len(data) < 28:
        raise ValueError(f"{path}: not a gettext .mo file ({len(data)} bytes, expected a 28-byte header at least)")
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        endian = "<"
    elif magic == 0xDE120495:
        endian = ">"
    else:
        raise ValueError(f"{path}: not a gettext .mo file (magic {magic:#x}, expected 0x950412de)")
    _, n, orig_off, trans_off = struct.unpack(endian + "4I", data[4:20])
    raw: list[tuple[bytes, bytes]] = []
    for i in range(n):
        olen, ooff = struct.unpack(endian + "2I", data[orig_off + 8 * i: orig_off + 8 * i + 8])
        tlen, toff = struct.unpack(endian + "2I", data[trans_off + 8 * i: trans_off + 8 * i + 8])
        if ooff + olen > len(data) or toff + tlen > len(data):
            raise ValueError(f"{path}: entry {i} points past the end of the file")
        raw.append((data[ooff: ooff + olen], data[toff: toff + tlen]))
    charset = "utf-8"
    for msgid, msgstr in raw:
        if msgid == b"":
            m = re.search(rb"charset=([A-Za-z0-9_\-]+)", msgstr)
            if m and m.group(1).lower() not in (b"charset",):
                charset = m.group(1).decode("ascii")
    out: dict[str, str] = {}
    for msgid, msgstr in raw:
        if not msgid or b"\x00" in msgid or b"\x04" in msgid or b"\x00" in msgstr:
            continue
        try:
            out[msgid.decode(charset)] = msgstr.decode(charset)
        except (UnicodeDecodeError, LookupError):
            continue
    return out


_FORMAT = re.compile(r"%(\d+\$)?[-+ #0']*(\d+|\*)?(\.(\d+|\*))?(hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcspn%]|\{[^}]*\}|%\([a-z_]+\)[sd]|\$\{?\w+\}?")


def _translatable(msgid: str, msgstr: str) -> bool:
    if not msgstr.strip() or msgstr.strip() == msgid.strip():
        return False
    if "\t" in msgid or msgid.count("\n") > 2 or len(msgid) > 700:
        return False
    words = _FORMAT.sub(" ", msgid).split()
    prose = [w for w in words if re.fullmatch(r"[A-Za-z][a-z'’]*[,.;:!?)]?", w)]
    if len(prose) < 6 or len(prose) < 0.7 * len(words):
        return False
    if len(_FORMAT.findall(msgid)) > 2 or re.search(r"<[a-z/]|--[a-z]|https?://|[{}\[\]=_]", msgid):
        return False
    return msgid[:1].isupper()  # a sentence, not a fragment


def _translate_candidates(src: SourceFile) -> list[Candidate]:
    lang = dict(src.extra)["lang"]
    try:
        catalog = read_mo(src.path)
    except (OSError, ValueError):
        return []
    out = []
    for msgid in sorted(catalog):
        msgstr = catalog[msgid]
        if not _translatable(msgid, msgstr):
            continue
        language = LANGUAGE_NAMES[lang]
        prompt = f"Translate the following English text into {language}.\n\nEnglish: {msgid.strip()}\n{language}:"
        key = f"{src.key}:{hashlib.sha1(msgid.encode()).hexdigest()[:12]}"
        out.append(Candidate("translate", prompt, msgstr.strip(), key, f"{src.origin}:{src.path}"))
    return out


# --------------------------------------------------------------------------------------------
# finding the sources


@dataclass
class _Found:
    """The sources of one domain: files and a reader, with the reports for the metadata."""

    files: list[SourceFile]
    read: Callable[[SourceFile], list[Candidate]]
    reports: list[dict]


def _list_stdlib(roots: SourceRoots) -> tuple[list[tuple[SourceFile, str]], dict | None]:
    root = Path(roots.stdlib_dir)
    files = _walk_py(root, skip_top=("lib2to3", "idlelib", "pydoc_data", "config-3"))
    if not files:
        return [], None
    version = platform.python_version()
    origin = f"CPython {version} standard library"
    out = [(SourceFile(p, f"stdlib:{p.relative_to(root).as_posix()}", origin), _module_name(root, p)) for p in files]
    report = {"source": "cpython-stdlib", "path": str(root), "package": "CPython", "version": version,
              "licence": "PSF-2.0", "files": len(files)}
    return out, report


def _list_site(roots: SourceRoots) -> tuple[list[tuple[SourceFile, str, str]], list[dict]]:
    index = DistIndex(roots.site_dirs)
    out: list[tuple[SourceFile, str, str]] = []
    dists: dict[str, dict] = {}
    for site in roots.site_dirs:
        site = Path(site)
        if not site.is_dir():
            continue
        for top in sorted(p.name for p in site.iterdir() if p.is_dir() and p.name.isidentifier()
                          and not p.name.startswith("_") and p.name not in _SKIP_DIRS):
            dist = index.distribution(top)
            if dist is None:
                continue
            name, version, lic = dist
            for p in _walk_py(site / top):
                rel = p.relative_to(site).as_posix()
                sf = SourceFile(p, f"pypi:{name}:{rel}", f"PyPI {name} {version}")
                out.append((sf, _module_name(site, p), name))
                d = dists.setdefault(name, {"source": "pypi", "path": str(site / top), "package": name,
                                            "version": version, "licence": lic, "files": 0})
                d["files"] += 1
    return out, [dists[k] for k in sorted(dists)]


def _man_files(roots: SourceRoots, dpkg: DpkgIndex, section: str = "man1") -> tuple[list[SourceFile], list[dict]]:
    folder = Path(roots.man_dir) / section
    if not folder.is_dir():
        return [], []
    out = []
    for p in sorted(folder.iterdir()):
        if p.name.endswith(".gz") and p.is_file() and not p.is_symlink():
            out.append(SourceFile(p, f"{section}:{p.name}", ""))
    report = [{"source": "debian-man-pages", "path": str(folder), "package": "(per page, from dpkg)",
               "version": None, "licence": "per package: /usr/share/doc/<package>/copyright", "files": len(out)}]
    return out, report


def _locale_files(roots: SourceRoots, languages: Sequence[str]) -> tuple[list[SourceFile], list[dict]]:
    out, reports = [], []
    for lang in languages:
        folder = Path(roots.locale_dir) / lang / "LC_MESSAGES"
        files = sorted(p for p in folder.glob("*.mo") if p.is_file() and not p.name.startswith("iso_")) if folder.is_dir() else []
        for p in files:
            out.append(SourceFile(p, f"locale:{lang}:{p.name}", "", (("lang", lang),)))
        if files:
            reports.append({"source": "gettext-catalogs", "path": str(folder), "language": lang,
                            "package": "(per catalog, from dpkg)", "version": None,
                            "licence": "per package: /usr/share/doc/<package>/copyright", "files": len(files)})
    return out, reports


def _with_debian_origin(src: SourceFile, dpkg: DpkgIndex) -> SourceFile:
    pkg, version = dpkg.package(src.path)
    origin = f"Debian {pkg} {version}" if pkg else "Debian (package unknown)"
    return SourceFile(src.path, src.key, origin, src.extra)


def find_sources(domain: str, roots: SourceRoots, config: PromptSetConfig, dpkg: DpkgIndex | None = None,
                 cache: dict | None = None) -> _Found:
    """The source files of ``domain`` that exist under ``roots``, and how to read them.

    ``cache`` (a dict owned by the caller) keeps folder listings between domains of one build.
    """
    dpkg = dpkg or DpkgIndex(roots.dpkg_dir)
    cache = {} if cache is None else cache

    def stdlib() -> tuple[list[tuple[SourceFile, str]], dict | None]:
        if "stdlib" not in cache:
            cache["stdlib"] = _list_stdlib(roots)
        return cache["stdlib"]

    def site() -> tuple[list[tuple[SourceFile, str, str]], list[dict]]:
        if "site" not in cache:
            cache["site"] = _list_site(roots)
        return cache["site"]

    if domain == "code":
        files, report = stdlib()
        modules = {sf.path: mod for sf, mod in files}
        return _Found([sf for sf, _ in files], lambda sf: _code_candidates(sf, modules[sf.path]), [report] if report else [])
    if domain == "summarize":
        files, report = stdlib()
        site, site_reports = site()
        modules = {sf.path: mod for sf, mod in files}
        modules.update({sf.path: mod for sf, mod, _ in site})
        all_files = [sf for sf, _ in files] + [sf for sf, _, _ in site]
        return _Found(all_files, lambda sf: _summarize_candidates(sf, modules[sf.path]),
                      ([report] if report else []) + site_reports)
    if domain == "questions":
        site, site_reports = site()
        man, man_reports = _man_files(roots, dpkg)
        info = {sf.path: (mod, dist) for sf, mod, dist in site}

        def read(sf: SourceFile) -> list[Candidate]:
            if sf.key.startswith("man1:"):
                return _man_question_candidate(_with_debian_origin(sf, dpkg))
            mod, dist = info[sf.path]
            return _docstring_question_candidates(sf, mod, dist)

        return _Found([sf for sf, _, _ in site] + man, read, site_reports + man_reports)
    if domain == "translate":
        files, reports = _locale_files(roots, config.languages)
        return _Found(files, lambda sf: _translate_candidates(_with_debian_origin(sf, dpkg)), reports)
    raise ValueError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}")


# --------------------------------------------------------------------------------------------
# building


def _origins(x_source: pd.Series, dpkg: DpkgIndex, sources: list[dict]) -> list[dict]:
    """The packages the chosen prompts come from: origin (package and version), prompts, licence."""
    pypi_licence = {r["package"]: r["licence"] for r in sources if r["source"] == "pypi"}
    counts = x_source.str.split(":/", n=1).str[0].value_counts()
    out = []
    for origin in sorted(counts.index):
        entry = {"origin": origin, "prompts": int(counts[origin])}
        parts = origin.split(" ")
        if parts[0] == "Debian" and len(parts) >= 3:
            entry["licence_file"] = dpkg.licence_file(parts[1])
        elif parts[0] == "PyPI" and len(parts) >= 3:
            entry["licence"] = pypi_licence.get(parts[1])
        elif parts[0] == "CPython":
            entry["licence"] = "PSF-2.0"
        out.append(entry)
    return out


def _describe_reports(reports: list[dict]) -> str:
    """One line: 'cpython-stdlib /usr/lib/python3.11 (572 files); pypi: 80 packages (9,876 files); ...'."""
    parts, pypi = [], [r for r in reports if r["source"] == "pypi"]
    for r in reports:
        if r["source"] != "pypi":
            where = f"{r['path']}" + (f" [{r['language']}]" if "language" in r else "")
            parts.append(f"{r['source']} {where} ({r['files']:,} files)")
    if pypi:
        parts.append(f"pypi: {len(pypi)} packages ({sum(r['files'] for r in pypi):,} files)")
    return "; ".join(parts)


def domain_rng(seed: int, domain: str, purpose: str) -> np.random.Generator:
    """The generator for one (domain, purpose): independent of the other domains' sizes."""
    return np.random.default_rng([seed, zlib.crc32(domain.encode()), zlib.crc32(purpose.encode())])


def query_id(domain: str, key: str, prompt: str) -> str:
    """A stable id: a hash of domain, machine-independent source name and prompt text."""
    digest = hashlib.sha256(f"{domain}\x1f{key}\x1f{prompt}".encode()).hexdigest()
    return f"{domain[:4]}-{digest[:16]}"


def _group_queues(files: Sequence[SourceFile], rng: np.random.Generator) -> list[list[int]]:
    """Indices of ``files`` per source group (stdlib, pypi, man pages, one language's catalogs),
    each group shuffled, the groups in a random order."""
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        groups.setdefault(f.group, []).append(i)
    queues = [[groups[g][int(j)] for j in rng.permutation(len(groups[g]))] for g in sorted(groups)]
    return [queues[int(k)] for k in rng.permutation(len(queues))]


def sample_domain(found: _Found, n: int, per_source: int, rng: np.random.Generator) -> list[Candidate]:
    """Up to ``n`` candidates: the source groups take turns; on its turn a group reads its next
    files (in a random order) until one gives a candidate not taken yet, and gives at most
    ``per_source`` random ones from that file. So a group with many files or many usable
    prompts does not crowd out a small one."""
    chosen: list[Candidate] = []
    seen: set[str] = set()
    queues = _group_queues(found.files, rng)
    cursor = [0] * len(queues)
    while len(chosen) < n and any(c < len(q) for c, q in zip(cursor, queues)):
        for g, queue in enumerate(queues):
            while cursor[g] < len(queue):
                sf = found.files[queue[cursor[g]]]
                cursor[g] += 1
                fresh: dict[str, Candidate] = {}  # first of each prompt text not taken yet
                for c in found.read(sf):
                    if c.prompt not in seen and len(c.prompt) <= MAX_PROMPT_CHARS:
                        fresh.setdefault(c.prompt, c)
                cands = list(fresh.values())
                if cands:
                    for j in sorted(rng.permutation(len(cands))[:per_source]):
                        chosen.append(cands[int(j)])
                        seen.add(cands[int(j)].prompt)
                    break
            if len(chosen) >= n:
                break
    return chosen[:n]


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, ...]:
    """Largest-remainder counts of ``n`` items over ``fractions`` (ties go to the earlier split)."""
    exact = [n * f for f in fractions]
    counts = [int(np.floor(e)) for e in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return tuple(counts)


def assign_splits(n: int, fractions: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """object (n,) array of split names: the counts of ``split_counts``, in a random order."""
    labels = np.repeat(np.array(SPLIT_NAMES, dtype=object), split_counts(n, fractions))
    return labels[rng.permutation(n)]


@dataclass(frozen=True)
class PromptSet:
    """The built prompts (one row per prompt, ``PROMPT_COLUMNS``) and the build's metadata."""

    frame: pd.DataFrame
    metadata: dict


def domain_frame(domain: str, chosen: Sequence["Candidate"], split: Any) -> pd.DataFrame:
    """The prompts-table rows of one domain's chosen candidates; ``split``: one name or one per row."""
    return pd.DataFrame({
        "query_id": [query_id(domain, c.key, c.prompt) for c in chosen],
        "prompt": [c.prompt for c in chosen],
        "domain": domain,
        "split": split,
        "x_source": [c.source for c in chosen],
        "x_reference": [c.reference for c in chosen],
    })


def build_prompt_set(config: PromptSetConfig = PromptSetConfig(), roots: SourceRoots | None = None,
                     log: Callable[[str], None] | None = None) -> PromptSet:
    """Build the prompt set that ``config`` asks for from the sources under ``roots``.

    Domains whose sources are all missing are skipped (said on ``log``, listed in
    ``metadata['skipped']``); if no domain has any source, raises FileNotFoundError naming the
    folders searched.
    """
    config.validate()
    roots = roots or SourceRoots()
    say = log or (lambda _msg: None)
    dpkg, cache = DpkgIndex(roots.dpkg_dir), {}
    frames, sources, skipped, counts = [], [], {}, {}
    for domain in config.domains:
        found = find_sources(domain, roots, config, dpkg, cache)
        if not found.files:
            skipped[domain] = "no source found"
            say(f"prompts: {domain}: no source found, skipped")
            continue
        say(f"prompts: {domain}: found {_describe_reports(found.reports)}")
        chosen = sample_domain(found, config.per_domain, config.per_source, domain_rng(config.seed, domain, "sample"))
        if not chosen:
            skipped[domain] = "sources found, but no usable prompt in them"
            say(f"prompts: {domain}: sources found but no usable prompt, skipped")
            continue
        if len(chosen) < config.per_domain:
            say(f"prompts: {domain}: only {len(chosen)} prompts available (asked for {config.per_domain})")
        counts[domain] = len(chosen)
        sources.extend({"domain": domain, **r} for r in found.reports)
        frames.append(domain_frame(domain, chosen, assign_splits(len(chosen), config.split, domain_rng(config.seed, domain, "split"))))
    if not frames:
        raise FileNotFoundError(
            f"no prompt source found for {', '.join(config.domains)}: searched stdlib {roots.stdlib_dir}, "
            f"site-packages {', '.join(map(str, roots.site_dirs)) or '(none)'}, locales {roots.locale_dir}, man pages {roots.man_dir}"
        )
    frame = pd.concat(frames, ignore_index=True)  # query_id is unique: prompts are unique within a domain
    say(f"prompts: {len(frame)} prompts: " + ", ".join(f"{d} {n}" for d, n in counts.items()))
    metadata = {
        "format_version": PROMPTS_FORMAT_VERSION,
        "config": {**asdict(config), "domains": list(config.domains), "split": list(config.split),
                   "languages": list(config.languages)},
        "roots": roots.to_json(),
        "python": platform.python_version(),
        "counts": counts,
        "split_counts": {d: {s: int(((frame["domain"] == d) & (frame["split"] == s)).sum()) for s in SPLIT_NAMES}
                         for d in counts},
        "skipped": skipped,
        "sources": sources,
        "origins": _origins(frame["x_source"], dpkg, sources),
    }
    return PromptSet(frame[list(PROMPT_COLUMNS)], metadata)


# --------------------------------------------------------------------------------------------
# writing and reading


def _arrow_schema(metadata: dict | None = None) -> pa.Schema:
    fields = [pa.field("query_id", pa.string(), nullable=False), pa.field("prompt", pa.string(), nullable=False),
              pa.field("domain", pa.string(), nullable=False), pa.field("split", pa.string(), nullable=False),
              pa.field("x_source", pa.string(), nullable=False), pa.field("x_reference", pa.string(), nullable=True)]
    meta = {METADATA_KEY: json.dumps(metadata, sort_keys=True, ensure_ascii=False).encode()} if metadata else None
    return pa.schema(fields, metadata=meta)


def sidecar_path(out: str | os.PathLike) -> Path:
    """``prompts.parquet`` -> ``prompts.sources.json``."""
    out = Path(out)
    return out.with_name(out.stem + ".sources.json")


def check_prompt_set_path(out: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise unless a prompt set can be written to ``out``; the CLI calls it before mining anything."""
    out = Path(out)
    if out.suffix != ".parquet":
        raise ValueError(f"the prompt set must be written to a .parquet file; got {out}")
    if not overwrite:
        for p in (out, sidecar_path(out)):
            if p.exists():
                raise FileExistsError(f"{p} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"folder {out.parent} does not exist (for {out.name})")


def write_prompt_set(prompt_set: PromptSet, out: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
    """Write the Parquet file and its sidecar JSON atomically; returns both paths.

    Refuses to replace an existing file unless ``overwrite``; a failed write leaves what was
    there untouched.
    """
    out = Path(out)
    side = sidecar_path(out)
    check_prompt_set_path(out, overwrite)
    table = pa.Table.from_pandas(prompt_set.frame, schema=_arrow_schema(prompt_set.metadata), preserve_index=False)
    text = json.dumps(prompt_set.metadata, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write(out, lambda p: pq.write_table(table, p, compression="zstd"))
    atomic_write(side, lambda p: p.write_text(text, encoding="utf-8"))
    return out, side


def read_prompt_set(path: str | os.PathLike) -> PromptSet:
    """Read a prompt set written by ``write_prompt_set`` (or any Parquet file with its columns).

    Checks the columns and that ``query_id`` is unique and ``split`` is a known split name.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt set {path} does not exist")
    table = pq.read_table(path)
    missing = [c for c in ("query_id", "prompt") if c not in table.column_names]
    if missing:
        raise ValueError(f"prompt set {path} lacks column(s) {', '.join(missing)}; found {', '.join(table.column_names)}")
    frame = table.to_pandas()
    dup = frame["query_id"].duplicated()
    if dup.any():
        raise ValueError(f"prompt set {path}: `query_id` must be unique; {int(dup.sum())} repeated (first: {frame['query_id'][dup].iloc[0]})")
    if "split" in frame:
        bad = frame["split"].notna() & ~frame["split"].isin(SPLIT_NAMES)
        if bad.any():
            raise ValueError(f"prompt set {path}: `split` must be one of {', '.join(SPLIT_NAMES)} or null; "
                             f"{int(bad.sum())} rows are not (first: query_id={frame['query_id'][bad].iloc[0]})")
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return PromptSet(frame, json.loads(raw) if raw else {})
