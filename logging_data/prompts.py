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

Each domain's sources and miner are one module of ``logging_data/prompt_sources`` (found by name in
its ``SOURCES`` table); this module samples, splits and writes.

Output: a Parquet file with the columns ``query_id`` (a stable hash of domain, source and prompt
text), ``prompt``, ``domain``, ``split``, ``x_source`` and ``x_reference`` (null when none), and
the build's metadata (settings, and every source with its package, version and licence) both in
the Parquet footer under the key ``draftpick_prompts`` and in a sidecar ``<name>.sources.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .files import atomic_write
from .outputs import PROMPT_SET, check_output
from .schema import SPLITS
from .prompt_sources import SOURCES, find_sources
from .prompt_sources.base import (SKIP_DIRS, LANGUAGE_NAMES, LANGUAGES, MAX_PROMPT_CHARS, Candidate, DistIndex,  # noqa: F401
                                  DpkgIndex, Listings, SourceFile, SourceRoots, Found, locale_files, man_files,
                                  module_name, walk_py, with_debian_origin)
from .prompt_sources.code import code_candidates  # noqa: F401  (re-exported for examples/make_heldout.py)
from .prompt_sources.questions import man_question_candidate  # noqa: F401
from .prompt_sources.summarize import summarize_candidates  # noqa: F401
from .prompt_sources.translate import translate_candidates, read_mo  # noqa: F401

DOMAINS: tuple[str, ...] = tuple(SOURCES)  # one module per domain in logging_data/prompt_sources
SPLIT_NAMES: tuple[str, ...] = SPLITS  # the log schema's splits
PROMPT_COLUMNS: tuple[str, ...] = ("query_id", "prompt", "domain", "split", "x_source", "x_reference")
METADATA_KEY = b"draftpick_prompts"
PROMPTS_FORMAT_VERSION = "1.0"


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


# --------------------------------------------------------------------------------------------
# building


def source_origins(x_source: pd.Series, dpkg: DpkgIndex, sources: list[dict]) -> list[dict]:
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


def describe_reports(reports: list[dict]) -> str:
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


def sample_domain(found: Found, n: int, per_source: int, rng: np.random.Generator) -> list[Candidate]:
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
        say(f"prompts: {domain}: found {describe_reports(found.reports)}")
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
        "origins": source_origins(frame["x_source"], dpkg, sources),
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


def check_prompt_set_path(out: str | os.PathLike, overwrite: bool = False, inputs: Iterable[tuple[str, Any]] = ()) -> None:
    """Raise unless a prompt set can be written to ``out``; the CLI calls it before mining anything.

    ``overwrite`` replaces a prompt set (a .parquet file with its sidecar) and nothing else; never
    inside a log, onto or around ``inputs`` (label, path) (``outputs.check_output``)."""
    out = Path(out)
    if out.suffix != ".parquet":
        raise ValueError(f"the prompt set must be written to a .parquet file; got {out}")
    check_output(out, PROMPT_SET, inputs=inputs, if_exists="overwrite", overwrite=overwrite)
    if not overwrite and sidecar_path(out).exists():
        raise FileExistsError(f"{sidecar_path(out)} exists; pass overwrite=True (CLI: --overwrite) to replace it")
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
