"""Build the fixed held-out prompt set: the four domains of ``bandit-log prompts``, from sources it never reads.

    python examples/make_heldout.py --out examples/data/heldout-prompts.parquet --per-domain 12

The main builder (``logging_data/prompts.py``) reads the CPython standard library (``code``,
``summarize``), the installed PyPI packages of this virtualenv (``summarize``, ``questions``), the
German / French / Spanish / Italian gettext catalogs (``translate``) and the section-1 man pages
(``questions``). This script makes prompts with the builder's own miners and templates from other
sources, so a learned policy can be checked on prompts from sources it never saw:

- ``code``: functions of the Debian-packaged Python libraries in ``/usr/lib/python3/dist-packages``
  (python3-apt, cryptography, oauthlib, ...), leaving out every distribution the builder read
  (pip, setuptools, Pygments, PyYAML, ...). The builder's template, with "third-party" in place
  of "standard library".
- ``summarize``: module and class docstrings of the same Debian-packaged libraries (the
  builder's template, unchanged).
- ``translate``: English -> Portuguese / Dutch / Polish / Swedish, from the same Debian packages'
  catalogs in ``/usr/share/locale/<lang>/LC_MESSAGES``.
- ``questions``: what an administration command does, from the NAME line of the section-8 man
  pages (``/usr/share/man/man8``); the builder's template, unchanged.

Every row has ``split = "test"``. A candidate is dropped (and counted) when its prompt text or its
query id is in a main prompt set (``examples/data/prompts-large.parquet``,
``examples/data/prompts.parquet``), or when its content is: the same function header and
docstring, the same English sentence, the same documentation text. A source that lies under one
of the main sets' recorded sources (their ``.sources.json``) is refused; a missing source is
reported and skipped. Writes the Parquet file and its ``.sources.json`` sidecar, like the builder.
The output is committed: nothing in CI rebuilds it.

Research only, and longer than an example should be (named in BENCHMARKS.md, "Benchmark commands"):
builds the committed held-out prompt set once, from this machine's dpkg sources, with its leak guards
against the main prompt sets; its output is data (``examples/data/heldout-prompts.parquet``) and no other script
uses its code.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from importlib.metadata import distributions
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from logging_data.prompts import (
    SKIP_DIRS,
    DOMAINS,
    LANGUAGE_NAMES,
    PROMPT_COLUMNS,
    PROMPTS_FORMAT_VERSION,
    SPLIT_NAMES,
    Candidate,
    DpkgIndex,
    PromptSet,
    SourceFile,
    SourceRoots,
    code_candidates,
    describe_reports,
    Found,
    locale_files,
    man_files,
    man_question_candidate,
    module_name,
    source_origins,
    summarize_candidates,
    translate_candidates,
    walk_py,
    with_debian_origin,
    domain_frame,
    domain_rng,
    query_id,
    read_prompt_set,
    sample_domain,
    sidecar_path,
    write_prompt_set,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
MAIN_SETS: tuple[Path, ...] = (DATA / "prompts-large.parquet", DATA / "prompts.parquet")
DIST_DIR = Path("/usr/lib/python3/dist-packages")
LOCALE_DIR = Path("/usr/share/locale")
MAN_DIR = Path("/usr/share/man")
DPKG_DIR = Path("/var/lib/dpkg")
HELDOUT_LANGUAGES: tuple[str, ...] = ("pt", "nl", "pl", "sv")
MAN_SECTION = "man8"
CODE_LIBRARY = "third-party"  # the builder's code template says "standard library"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _relative(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# what the main sets used and hold


class MainSets:
    """The main prompt sets: their prompts, ids and content keys, and the sources they were built from.

    (A plain class, not a dataclass: the script is also loaded by file path, outside ``sys.modules``.)
    """

    def __init__(self) -> None:
        self.files: list[str] = []
        self.prompts: set[str] = set()
        self.ids: set[str] = set()
        self.content: dict[str, set[str]] = {}
        self.source_paths: set[str] = set()  # folders the builder read (its sources and roots)
        self.pypi: set[str] = set()  # normalised distribution names and top-level folders
        self.languages: set[str] = set()

    def covers(self, path: Path) -> str | None:
        """The main sets' source folder that holds ``path`` (or is inside it), if any."""
        p = Path(path).resolve()
        for s in sorted(self.source_paths):
            q = Path(s).resolve()
            if p == q or q in p.parents or p in q.parents:
                return s
        return None


def content_key(domain: str, prompt: str) -> str:
    """What a prompt is about, without its instruction: the function (code), the English text
    (translate), the documentation (summarize), the whole question (questions)."""
    if domain == "code":
        m = re.search(r"```python\n(.*)\n```", prompt, re.S)
    elif domain == "translate":
        m = re.search(r"\n\nEnglish: (.*)\n[^\n]*:\Z", prompt, re.S)
    elif domain == "summarize":
        m = re.search(r"\n\n(.*)\Z", prompt, re.S)
    else:
        m = None
    return (m.group(1) if m else prompt).strip()


def load_main_sets(paths: Sequence[Path]) -> MainSets:
    """Read every main set (all must exist) and its sidecar's list of sources."""
    main = MainSets()
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"main prompt set {path} does not exist: cannot check the held-out set against it")
        frame = read_prompt_set(path).frame
        main.files.append(_relative(path))
        main.prompts.update(frame["prompt"])
        main.ids.update(frame["query_id"])
        for domain, prompt in zip(frame["domain"], frame["prompt"]):
            main.content.setdefault(domain, set()).add(content_key(domain, prompt))
        side = sidecar_path(path)
        meta = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
        roots = meta.get("roots", {})
        main.source_paths.update(s["path"] for s in meta.get("sources", []))
        main.source_paths.update([roots["stdlib_dir"]] if roots.get("stdlib_dir") else [])
        main.source_paths.update(roots.get("site_dirs", []))
        main.pypi.update(_norm(s["package"]) for s in meta.get("sources", []) if s["source"] == "pypi")
        main.pypi.update(_norm(Path(s["path"]).name) for s in meta.get("sources", []) if s["source"] == "pypi")
        main.languages.update(meta.get("config", {}).get("languages", []))
    return main


class Guard:
    """Drops candidates that a main set already holds, counting each dropped prompt once."""

    def __init__(self, main: MainSets):
        self.main = main
        self.dropped: dict[str, set[tuple[str, str]]] = {"same_prompt": set(), "same_query_id": set(), "same_content": set()}

    def keep(self, c: Candidate) -> bool:
        if c.prompt in self.main.prompts:
            reason = "same_prompt"
        elif query_id(c.domain, c.key, c.prompt) in self.main.ids:
            reason = "same_query_id"
        elif content_key(c.domain, c.prompt) in self.main.content.get(c.domain, ()):
            reason = "same_content"
        else:
            return True
        self.dropped[reason].add((c.domain, c.prompt))
        return False

    def wrap(self, found: Found) -> Found:
        return Found(found.files, lambda sf: [c for c in found.read(sf) if self.keep(c)], found.reports)

    def counts(self) -> dict[str, int]:
        """Dropped candidates per reason."""
        return {k: len(v) for k, v in self.dropped.items()}

    def counts_by_domain(self) -> dict[str, dict[str, int]]:
        """Dropped candidates per domain and reason (domains with none left out)."""
        out: dict[str, dict[str, int]] = {}
        for reason, items in self.dropped.items():
            for domain, _ in items:
                out.setdefault(domain, dict.fromkeys(self.dropped, 0))[reason] += 1
        return {d: out[d] for d in DOMAINS if d in out}


# --------------------------------------------------------------------------------------------
# the held-out sources


def _dist_tops(dist_dir: Path) -> dict[str, tuple[str, str]]:
    """Top-level folder of ``dist_dir`` -> (distribution, version), from its egg-info / dist-info."""
    tops: dict[str, tuple[str, str]] = {}
    found = []
    for dist in distributions(path=[str(dist_dir)]):
        meta = dist.metadata
        found.append((meta["Name"] or "?", meta["Version"] or "?", dist))
    for name, version, dist in sorted(found, key=lambda t: (t[0], t[1])):
        names = (dist.read_text("top_level.txt") or "").split()
        record = dist.read_text("RECORD") or ""
        names += [line.split("/", 1)[0] for line in record.splitlines() if "/" in line.split(",", 1)[0]]
        for top in names:
            tops.setdefault(top, (name, version))
    return tops


def list_python_sources(dist_dir: Path, main: MainSets, say: Callable[[str], None]) -> tuple[list[tuple[SourceFile, str]], list[dict]]:
    """The ``.py`` files of ``dist_dir``'s packages that no main set read, and one report per package."""
    dist_dir = Path(dist_dir)
    if not dist_dir.is_dir():
        say(f"heldout: {dist_dir} does not exist: no Python library source")
        return [], []
    held = main.covers(dist_dir)
    if held:
        say(f"heldout: {dist_dir} lies under the main sets' source {held}: refused")
        return [], []
    tops = _dist_tops(dist_dir)
    out, reports, left_out = [], [], []
    for top in sorted(p.name for p in dist_dir.iterdir() if p.is_dir() and p.name.isidentifier()
                      and not p.name.startswith("_") and p.name not in SKIP_DIRS):
        name, version = tops.get(top, (top, None))
        if _norm(name) in main.pypi or _norm(top) in main.pypi:
            left_out.append(f"{top} ({name})")
            continue
        files = walk_py(dist_dir / top)
        for p in files:
            out.append((SourceFile(p, f"dist-packages/{top}:{p.relative_to(dist_dir).as_posix()}", ""), module_name(dist_dir, p)))
        if files:
            reports.append({"source": "debian-python-library", "path": str(dist_dir / top), "package": name,
                            "version": version, "licence": "per package: /usr/share/doc/<package>/copyright",
                            "files": len(files)})
    if left_out:
        say(f"heldout: {dist_dir}: left out (a main set read these distributions): {', '.join(left_out)}")
    return out, reports


def find_heldout_sources(domain: str, roots: dict, main: MainSets, dpkg: DpkgIndex, cache: dict,
                         say: Callable[[str], None]) -> Found:
    """The held-out sources of ``domain`` that exist, and how to read them (the builder's miners)."""
    if domain in ("code", "summarize"):
        if "dist" not in cache:
            cache["dist"] = list_python_sources(roots["dist_dir"], main, say)
        files, reports = cache["dist"]
        modules = {sf.path: mod for sf, mod in files}
        if domain == "code":
            def read(sf: SourceFile) -> list[Candidate]:
                return code_candidates(with_debian_origin(sf, dpkg), modules[sf.path], CODE_LIBRARY)
        else:
            def read(sf: SourceFile) -> list[Candidate]:
                return summarize_candidates(with_debian_origin(sf, dpkg), modules[sf.path])
        return Found([sf for sf, _ in files], read, reports)
    if domain == "translate":
        languages = []
        for lang in roots["languages"]:
            held = main.covers(Path(roots["locale_dir"]) / lang / "LC_MESSAGES")
            if lang in main.languages or held:
                say(f"heldout: translate: language {lang!r} is a main set's source{f' ({held})' if held else ''}: refused")
            elif lang not in LANGUAGE_NAMES:
                say(f"heldout: translate: no name for language {lang!r} (known: {', '.join(LANGUAGE_NAMES)}): skipped")
            else:
                languages.append(lang)
        files, reports = locale_files(SourceRoots(locale_dir=Path(roots["locale_dir"])), languages)
        for lang in languages:
            if not any(dict(sf.extra)["lang"] == lang for sf in files):
                say(f"heldout: translate: no catalogs in {Path(roots['locale_dir']) / lang / 'LC_MESSAGES'}: skipped")
        return Found(files, lambda sf: translate_candidates(with_debian_origin(sf, dpkg)), reports)
    if domain == "questions":
        section = roots["man_section"]
        held = main.covers(Path(roots["man_dir"]) / section)
        if held:
            say(f"heldout: questions: {Path(roots['man_dir']) / section} is a main set's source ({held}): refused")
            return Found([], lambda sf: [], [])
        files, reports = man_files(SourceRoots(man_dir=Path(roots["man_dir"])), dpkg, section)
        if not files:
            say(f"heldout: questions: no man pages in {Path(roots['man_dir']) / section}: skipped")
        return Found(files, lambda sf: man_question_candidate(with_debian_origin(sf, dpkg)), reports)
    raise ValueError(f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}")


# --------------------------------------------------------------------------------------------
# building


def build_heldout(per_domain: int = 12, seed: int = 0, *, dist_dir: Path = DIST_DIR, locale_dir: Path = LOCALE_DIR,
                  man_dir: Path = MAN_DIR, dpkg_dir: Path = DPKG_DIR, languages: Sequence[str] = HELDOUT_LANGUAGES,
                  man_section: str = MAN_SECTION, main_sets: Sequence[Path] = MAIN_SETS, per_source: int = 1,
                  log: Callable[[str], None] | None = None) -> PromptSet:
    """The held-out prompt set (every row in the test split); see the module docstring."""
    if isinstance(per_domain, bool) or not isinstance(per_domain, int) or per_domain < 1:
        raise ValueError(f"`per_domain` must be an integer >= 1; got {per_domain!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be an integer >= 0; got {seed!r}")
    say = log or (lambda _msg: None)
    main = load_main_sets(main_sets)
    say(f"heldout: checking against {', '.join(main.files)} ({len(main.prompts):,} prompts)")
    roots = {"dist_dir": str(dist_dir), "locale_dir": str(locale_dir), "man_dir": str(man_dir), "dpkg_dir": str(dpkg_dir),
             "languages": list(languages), "man_section": man_section}
    dpkg = DpkgIndex(Path(dpkg_dir), prefixes=(str(Path(dist_dir)) + "/", str(Path(locale_dir)) + "/", str(Path(man_dir)) + "/"))
    guard, cache = Guard(main), {}
    frames, sources, skipped, counts = [], [], {}, {}
    for domain in DOMAINS:
        found = find_heldout_sources(domain, roots, main, dpkg, cache, say)
        if not found.files:
            skipped[domain] = "no source found"
            say(f"heldout: {domain}: no source found, skipped")
            continue
        say(f"heldout: {domain}: found {describe_reports(found.reports)}")
        chosen = sample_domain(guard.wrap(found), per_domain, per_source, domain_rng(seed, domain, "heldout"))
        if not chosen:
            skipped[domain] = "sources found, but no usable prompt in them"
            say(f"heldout: {domain}: sources found but no usable prompt, skipped")
            continue
        if len(chosen) < per_domain:
            say(f"heldout: {domain}: only {len(chosen)} prompts available (asked for {per_domain})")
        counts[domain] = len(chosen)
        sources.extend({"domain": domain, **r} for r in found.reports)
        frames.append(domain_frame(domain, chosen, "test"))
    if not frames:
        raise FileNotFoundError(f"no held-out prompt source found: searched {dist_dir}, {locale_dir} "
                                f"[{', '.join(languages)}], {Path(man_dir) / man_section}")
    frame = pd.concat(frames, ignore_index=True)[list(PROMPT_COLUMNS)]
    # the guard already dropped these; refuse to write if one slipped through
    clash = frame["prompt"].isin(main.prompts) | frame["query_id"].isin(main.ids)
    if clash.any() or not frame["query_id"].is_unique:
        raise RuntimeError(f"held-out set shares {int(clash.sum())} prompts or ids with the main sets; not written")
    dropped = guard.counts()
    say(f"heldout: dropped {sum(dropped.values())} candidates a main set holds "
        "(" + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dropped.items()) + ")")
    say(f"heldout: {len(frame)} prompts: " + ", ".join(f"{d} {n}" for d, n in counts.items()))
    metadata = {
        "format_version": PROMPTS_FORMAT_VERSION,
        "heldout": True,
        "config": {"per_domain": per_domain, "seed": seed, "per_source": per_source, "domains": list(counts),
                   "languages": [lang for lang in languages if lang in LANGUAGE_NAMES and lang not in main.languages],
                   "split": "test", "code_library": CODE_LIBRARY},
        "roots": {k: v for k, v in roots.items() if k.endswith("_dir")} | {"man_section": man_section},
        "python": platform.python_version(),
        "counts": counts,
        "split_counts": {d: {s: (n if s == "test" else 0) for s in SPLIT_NAMES} for d, n in counts.items()},
        "skipped": skipped,
        "sources": sources,
        "origins": source_origins(frame["x_source"], dpkg, sources),
        "excluded": {"main_sets": main.files, "main_sources": sorted(main.source_paths),
                     "main_languages": sorted(main.languages)},
        "dropped_overlaps": dropped,
        "dropped_overlaps_by_domain": guard.counts_by_domain(),
    }
    return PromptSet(frame, metadata)


def main(out: str | Path = DATA / "heldout-prompts.parquet", per_domain: int = 12, seed: int = 0, *,
         overwrite: bool = False, log: Callable[[str], None] | None = None, **sources) -> dict:
    """Build the held-out set and write it (and its ``.sources.json``) to ``out``; returns a summary.

    ``sources`` go to ``build_heldout`` (``dist_dir``, ``locale_dir``, ``man_dir``, ``dpkg_dir``,
    ``languages``, ``man_section``, ``main_sets``, ``per_source``).
    """
    say = log if log is not None else (lambda msg: print(msg, file=sys.stderr))
    built = build_heldout(per_domain, seed, log=say, **sources)
    path, side = write_prompt_set(built, out, overwrite=overwrite)
    say(f"heldout: wrote {path} and {side.name}")
    return {"out": str(path), "sidecar": str(side), "n_prompts": len(built.frame), "counts": built.metadata["counts"],
            "skipped": built.metadata["skipped"], "dropped_overlaps": built.metadata["dropped_overlaps"],
            "dropped_overlaps_by_domain": built.metadata["dropped_overlaps_by_domain"],
            "sources": sorted({s["path"] for s in built.metadata["sources"]})}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DATA / "heldout-prompts.parquet"))
    parser.add_argument("--per-domain", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-source", type=int, default=1, help="at most this many prompts from one file")
    parser.add_argument("--dist-dir", default=str(DIST_DIR), help="Python libraries for code and summarize")
    parser.add_argument("--locale-dir", default=str(LOCALE_DIR))
    parser.add_argument("--languages", default=",".join(HELDOUT_LANGUAGES))
    parser.add_argument("--man-dir", default=str(MAN_DIR))
    parser.add_argument("--man-section", default=MAN_SECTION)
    parser.add_argument("--dpkg-dir", default=str(DPKG_DIR))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    try:
        summary = main(args.out, args.per_domain, args.seed, overwrite=args.overwrite, per_source=args.per_source,
                       dist_dir=Path(args.dist_dir), locale_dir=Path(args.locale_dir), man_dir=Path(args.man_dir),
                       dpkg_dir=Path(args.dpkg_dir), man_section=args.man_section,
                       languages=tuple(x for x in args.languages.split(",") if x))
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(summary, indent=2))
