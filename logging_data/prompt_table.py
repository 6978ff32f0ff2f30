"""Prompts from any file a user has: Parquet, CSV, JSON Lines or plain text, with a column mapping.

The prompt table every command reads (``build``, ``decode``, the ``drafts`` commands) has the
columns ``query_id`` (unique, non-empty), ``prompt`` (non-empty text), optional ``domain`` and
``split`` (train / validation / test or null) and any ``x_*`` extras. ``read_prompt_table``
reads it from:

- ``.parquet`` / ``.pq``: a Parquet file (what ``bandit-log prompts`` writes);
- ``.csv``: a CSV file with a header row (every cell read as text; quoted newlines kept);
- ``.jsonl`` / ``.ndjson``: one JSON object per line;
- ``.txt``: one prompt per line (blank lines skipped), nothing else.

``PromptColumns`` maps the file's own column names onto the table's (CLI: ``--id-col``,
``--prompt-col``, ``--domain-col``, ``--split-col``). Where the file has no id column the ids are
made from the prompt text (``q-`` + the first 16 hex digits of its SHA-256: the same prompt gets
the same id in every file, a repeated prompt is reported). Where it has no split column and
``make_splits`` is true, each prompt gets a split from a seeded hash of its id, 60/20/20: the same
id lands in the same split on every run and machine.

Every problem names the file, and the row (1-based, as an editor shows it; a CSV's header is
line 1) and column where there is one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .schema import SPLITS
from .validate import first_line

#: file suffix -> format name
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt"}

#: the shares of train / validation / test when splits are made
SPLIT_SHARES = (0.6, 0.2, 0.2)


class PromptTableError(ValueError):
    """A prompts file cannot be read as a prompt table; the message names the file and what is wrong."""


@dataclass(frozen=True)
class PromptColumns:
    """The file's column names for each table column (None: the file has no such column)."""

    query_id: str | None = "query_id"
    prompt: str = "prompt"
    domain: str | None = "domain"
    split: str | None = "split"


def prompt_id(prompt: str) -> str:
    """The id made for a prompt that has none: ``q-`` + 16 hex digits of the SHA-256 of its UTF-8 text."""
    return "q-" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def split_for(query_id: str, seed: int = 0, shares: tuple[float, float, float] = SPLIT_SHARES) -> str:
    """The split a seeded hash of ``query_id`` gives (stable across runs, machines and row order)."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{query_id}".encode("utf-8")).digest()[:8], "big") / 2.0**64
    edge = 0.0
    for name, share in zip(SPLITS, shares):
        edge += share
        if h < edge:
            return name
    return SPLITS[-1]


def _show(value) -> str:
    """A cell as a person reads it: text quoted, numbers plain, numpy scalars unwrapped."""
    value = value.item() if hasattr(value, "item") else value
    return repr(value)


def missing(value) -> bool:
    """A cell with nothing in it: None, NaN/NA, or the empty string (what a CSV's empty field reads as)."""
    return value is None or value == "" or (not isinstance(value, str) and bool(pd.isna(value)))


def row_label(fmt: str, i: int) -> str:
    """Row ``i`` (0-based) of a file as an editor shows it: the line of a text format (a CSV's header
    is line 1), else the 1-based row."""
    return f"{'line' if fmt in ('csv', 'jsonl', 'txt') else 'row'} {i + (2 if fmt == 'csv' else 1)}"


def format_of(path: Path, fmt: str | None = None, what: str = "prompts file") -> str:
    """The format of ``path``: ``fmt`` when given (checked), else from its suffix."""
    if fmt is not None:
        if fmt not in set(FORMATS.values()):
            noun = "prompts" if what == "prompts file" else "file"
            raise PromptTableError(f"{noun} format must be one of {', '.join(sorted(set(FORMATS.values())))}; got {fmt!r}")
        return fmt
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise PromptTableError(f"{what + ' ' if what else ''}{path}: cannot tell its format from the suffix "
                               f"{path.suffix or '(none)'!r}; use one of {', '.join(FORMATS)} (or pass the format: --prompts-format)")
    return found


def read_rows(path: Path, fmt: str, what: str = "prompts file") -> pd.DataFrame:
    """The rows of a Parquet, CSV (every cell as text), JSON Lines or text (one ``prompt`` per
    non-blank line) file; a file that cannot be read raises ``PromptTableError`` naming it
    (``what`` goes before the path in the message)."""
    label = f"{what} {path}" if what else str(path)
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
        if fmt == "jsonl":
            rows = []
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise PromptTableError(f"{label}, line {n}: not JSON ({e.msg} at column {e.colno})") from None
                    if not isinstance(obj, dict):
                        raise PromptTableError(f"{label}, line {n}: expected a JSON object, found {type(obj).__name__}")
                    rows.append(obj)
            return pd.DataFrame(rows)
        # utf-8-sig: a byte-order mark is not part of the first prompt; lines end at \n, \r\n or \r only
        # (str.splitlines would also split inside a prompt at form feeds, U+2028 and other separators)
        text = path.read_text(encoding="utf-8-sig")
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return pd.DataFrame({"prompt": [ln for ln in lines if ln.strip()]})
    except PromptTableError:
        raise
    except UnicodeDecodeError as e:
        raise PromptTableError(f"{label}: not UTF-8 text (byte {e.start}); read as {fmt}") from None
    except Exception as e:  # pyarrow / pandas parser errors: name the file and the format tried
        raise PromptTableError(f"{label}: cannot be read as {fmt} ({first_line(e)})") from None


def read_prompt_table(path: str | os.PathLike, *, columns: PromptColumns = PromptColumns(), fmt: str | None = None,
                      make_splits: bool = False, seed: int = 0) -> pd.DataFrame:
    """The prompt table of ``path`` (see the module docstring), checked; row order kept."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"prompts file {p}: no such file")
    if p.is_dir():
        raise PromptTableError(f"prompts file {p}: is a directory; expected a {', '.join(FORMATS)} file")
    fmt = format_of(p, fmt)
    raw = read_rows(p, fmt)
    if len(raw) == 0:
        raise PromptTableError(f"prompts file {p}: holds no prompts (read as {fmt})")

    def where(i: int) -> str:
        return row_label(fmt, i)

    found = ", ".join(map(str, raw.columns)) or "none"
    if columns.prompt not in raw.columns:
        hint = " (a .txt file holds prompts only: one per line)" if fmt == "txt" else ""
        raise PromptTableError(f"prompts file {p}: no prompt column {columns.prompt!r}{hint}; its columns are {found} "
                               f"(name the right one with --prompt-col)")
    for role in ("query_id", "domain", "split"):
        name = getattr(columns, role)
        if name is not None and name not in raw.columns and name != role:
            raise PromptTableError(f"prompts file {p}: no {role} column {name!r}; its columns are {found}")
    out = pd.DataFrame(index=raw.index)
    prompts = raw[columns.prompt]
    bad = [i for i, v in enumerate(prompts) if not isinstance(v, str) or not v.strip()]
    if bad:
        i = bad[0]
        ident = f" (query_id {raw[columns.query_id].iloc[i]!r})" if columns.query_id in raw.columns else ""
        raise PromptTableError(f"prompts file {p}: {len(bad)} prompt(s) empty or not text; first at {where(i)}{ident}: "
                               f"{_show(prompts.iloc[i])}")
    out["query_id"] = (raw[columns.query_id] if columns.query_id in raw.columns else prompts.map(prompt_id))
    ids = out["query_id"]
    blank = [i for i, v in enumerate(ids) if missing(v) or not str(v).strip()]
    if blank:
        raise PromptTableError(f"prompts file {p}: {len(blank)} empty query_id(s); first at {where(blank[0])}")
    out["query_id"] = ids.astype(str)
    dup = out["query_id"].duplicated(keep=False)
    if dup.any():
        rows = [i for i, d in enumerate(dup) if d]
        first = out["query_id"].iloc[rows[0]]
        same = [where(i) for i in rows if out["query_id"].iloc[i] == first]
        what = "the same prompt text" if columns.query_id not in raw.columns else f"query_id {first!r}"
        raise PromptTableError(f"prompts file {p}: query_id must be unique; {what} at {', '.join(same[:4])}"
                               f"{' ...' if len(same) > 4 else ''} ({int(out['query_id'].duplicated().sum())} repeated in all)")
    out["prompt"] = prompts.astype(str)
    if columns.domain in raw.columns:
        out["domain"] = raw[columns.domain].map(lambda v: None if missing(v) else str(v))
    if columns.split in raw.columns:
        split = raw[columns.split].map(lambda v: None if missing(v) else str(v))
        wrong = [i for i, v in enumerate(split) if v is not None and v not in SPLITS]
        if wrong:
            raise PromptTableError(f"prompts file {p}: split must be one of {', '.join(SPLITS)} or empty; {len(wrong)} row(s) "
                                   f"are not, first at {where(wrong[0])}: {_show(split.iloc[wrong[0]])}")
        out["split"] = split
    elif make_splits:
        out["split"] = out["query_id"].map(lambda q: split_for(q, seed))
    mapped = {columns.query_id, columns.prompt, columns.domain, columns.split}
    for c in raw.columns:
        if str(c).startswith("x_") and c not in mapped:
            out[c] = raw[c]
    return out.reset_index(drop=True)
