"""What every prompt source shares: where to look, where a file comes from, a candidate prompt,
text helpers, and the folder listings (``Listings``) the domains read from.
"""

from __future__ import annotations

import ast
import os
import platform
import re
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

LANGUAGES: dict[str, str] = {"de": "German", "fr": "French", "es": "Spanish", "it": "Italian"}
#: names of every language a ``translate`` prompt may target; ``LANGUAGES`` (the default set) and
#: more, for sets built from other catalogs (e.g. the held-out set of ``examples/make_heldout.py``)
LANGUAGE_NAMES: dict[str, str] = {**LANGUAGES, "pt": "Portuguese", "nl": "Dutch", "pl": "Polish", "sv": "Swedish",
                                  "da": "Danish", "fi": "Finnish", "cs": "Czech", "ro": "Romanian"}
MAX_PROMPT_CHARS = 1400  # ~300 SmolLM2 tokens for prose; code is held shorter below

SKIP_DIRS = {"__pycache__", "test", "tests", "idle_test", "testing", "site-packages", "dist-packages",
              "ensurepip", "turtledemo", "_vendor", "vendor", "vendored", "_distutils", "benchmarks"}


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


def words(text: str) -> int:
    return len(text.split())


def clean_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def walk_py(root: Path, skip_top: Iterable[str] = ()) -> list[Path]:
    """Every ``.py`` file under ``root`` (sorted), outside test and vendored folders."""
    out: list[Path] = []
    if not root.is_dir():
        return out
    skip_top = set(skip_top)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith((".", "_"))
                             and not d.endswith((".dist-info", ".egg-info", ".data"))
                             and not (rel == Path(".") and d in skip_top) and d.isidentifier())
        for name in sorted(filenames):
            if name.endswith(".py") and not name.startswith("test_") and name != "setup.py":
                out.append(Path(dirpath) / name)
    return out


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def parse_python(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def split_docstring(doc: str) -> tuple[str, str]:
    """(summary line, body) of a PEP 257 docstring; the body with its paragraphs joined."""
    doc = doc.strip()
    parts = re.split(r"\n\s*\n", doc, maxsplit=1)
    summary = clean_space(parts[0])
    body = parts[1] if len(parts) > 1 else ""
    return summary, body


def prose_paragraphs(body: str) -> list[str]:
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


# -- finding the sources ---------------------------------------------------------------------


@dataclass
class Found:
    """The sources of one domain: files and a reader, with the reports for the metadata."""

    files: list[SourceFile]
    read: Callable[[SourceFile], list[Candidate]]
    reports: list[dict]


def _list_stdlib(roots: SourceRoots) -> tuple[list[tuple[SourceFile, str]], dict | None]:
    root = Path(roots.stdlib_dir)
    files = walk_py(root, skip_top=("lib2to3", "idlelib", "pydoc_data", "config-3"))
    if not files:
        return [], None
    version = platform.python_version()
    origin = f"CPython {version} standard library"
    out = [(SourceFile(p, f"stdlib:{p.relative_to(root).as_posix()}", origin), module_name(root, p)) for p in files]
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
                          and not p.name.startswith("_") and p.name not in SKIP_DIRS):
            dist = index.distribution(top)
            if dist is None:
                continue
            name, version, lic = dist
            for p in walk_py(site / top):
                rel = p.relative_to(site).as_posix()
                sf = SourceFile(p, f"pypi:{name}:{rel}", f"PyPI {name} {version}")
                out.append((sf, module_name(site, p), name))
                d = dists.setdefault(name, {"source": "pypi", "path": str(site / top), "package": name,
                                            "version": version, "licence": lic, "files": 0})
                d["files"] += 1
    return out, [dists[k] for k in sorted(dists)]


def man_files(roots: SourceRoots, dpkg: DpkgIndex, section: str = "man1") -> tuple[list[SourceFile], list[dict]]:
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


def locale_files(roots: SourceRoots, languages: Sequence[str]) -> tuple[list[SourceFile], list[dict]]:
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


def with_debian_origin(src: SourceFile, dpkg: DpkgIndex) -> SourceFile:
    pkg, version = dpkg.package(src.path)
    origin = f"Debian {pkg} {version}" if pkg else "Debian (package unknown)"
    return SourceFile(src.path, src.key, origin, src.extra)


class Listings:
    """The folder listings of one build, shared by its domains (each folder listed once).

    ``cache`` (a dict owned by the caller) keeps them between calls.
    """

    def __init__(self, roots: SourceRoots, dpkg: DpkgIndex, cache: dict | None = None) -> None:
        self.roots, self.dpkg = roots, dpkg
        self.cache = {} if cache is None else cache

    def stdlib(self) -> tuple[list[tuple[SourceFile, str]], dict | None]:
        if "stdlib" not in self.cache:
            self.cache["stdlib"] = _list_stdlib(self.roots)
        return self.cache["stdlib"]

    def site(self) -> tuple[list[tuple[SourceFile, str, str]], list[dict]]:
        if "site" not in self.cache:
            self.cache["site"] = _list_site(self.roots)
        return self.cache["site"]
