"""Check a table against the contract and report every problem at once.

``check_frame`` checks rows about to be appended (or already written) and returns a list of
``Problem``s; ``validate_log`` checks a whole log directory on disk. Neither raises for a bad
log: they report. ``LogValidationError`` carries the problems when a caller must refuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from .schema import EXTRA_PREFIX, KEYS, QUERY_LEVEL, SCHEMA_VERSION, SPEEDUP_KINDS, SPLITS, LogMetadata, columns, version_key

MAX_ROWS_NAMED = 3


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class Problem:
    """One broken invariant: where (table, column), what, how many rows, and the first ones."""

    table: str
    column: str
    message: str
    n_rows: int = 0
    first_rows: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        rows = f" (first: {', '.join(self.first_rows)})" if self.first_rows else ""
        return f"{where}: {self.message}{rows}"


class LogValidationError(ValueError):
    """Raised when rows or a log break the contract; ``problems`` lists all of them."""

    def __init__(self, problems: list[Problem], context: str = "") -> None:
        self.problems = list(problems)
        head = f"{context}: " if context else ""
        lines = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{head}{len(self.problems)} problem(s): {lines}")


@dataclass
class ValidationReport:
    path: str
    problems: list[Problem] = field(default_factory=list)
    n_rows: dict[str, int] = field(default_factory=dict)
    n_parts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {
            "path": self.path, "ok": self.ok, "n_rows": self.n_rows, "n_parts": self.n_parts, "notes": self.notes,
            "problems": [
                {"table": p.table, "column": p.column, "message": p.message, "n_rows": p.n_rows, "first_rows": list(p.first_rows)}
                for p in self.problems
            ],
        }


def _row_names(frame: pd.DataFrame, mask: np.ndarray) -> tuple[str, ...]:
    idx = np.flatnonzero(mask)[:MAX_ROWS_NAMED]
    if "query_id" in frame.columns:
        ids = frame["query_id"].to_numpy(dtype=object)
        return tuple(f"row {i} query_id={ids[i]}" for i in idx)
    return tuple(f"row {i}" for i in idx)


def _bad(table: str, column: str, message: str, frame: pd.DataFrame, mask: np.ndarray) -> Problem:
    n = int(mask.sum())
    return Problem(table, column, f"{n} row(s) {message}", n, _row_names(frame, mask))


def check_types(table: str, schema: pa.Schema, version: str | None = None) -> list[Problem]:
    """Declared columns present with the declared Arrow type; no undeclared, unprefixed column.

    ``version``: the schema version of the log the columns belong to (default: this package's).
    A column added after it (``Column.since``) may be absent. A log of a newer minor version may
    carry columns this package does not know; they are not an error (and not checked).
    """
    problems: list[Problem] = []
    declared = {c.name: c for c in columns(table)}
    newer_log = version is not None and version_key(version) > version_key(SCHEMA_VERSION)
    for name, col in declared.items():
        if name not in schema.names:
            if col.required_in(version):
                problems.append(Problem(table, name, f"missing column (expected {col.type})"))
            continue
        found = schema.field(name).type
        if pa.types.is_dictionary(found):
            found = found.value_type
        if pa.types.is_large_string(found) and pa.types.is_string(col.type):
            continue
        if found != col.type:
            problems.append(Problem(table, name, f"expected type {col.type}, found {found}"))
    for name in schema.names:
        if name not in declared and not name.startswith(EXTRA_PREFIX) and not name.startswith("__index_level_") and not newer_log:
            problems.append(
                Problem(table, name, f"undeclared column (declared columns are fixed; user extras must start with {EXTRA_PREFIX!r})")
            )
    return problems


def reward_bound(metadata: LogMetadata):
    """(test, description) of the values the log's reward definition allows, or None (custom).

    A speed-up is > 0; time saved (1 - 1/speed-up) is < 1. Alignment and custom rewards are
    left unbounded here (tests and users scale them freely).
    """
    reward = metadata.reward
    if reward.kind in SPEEDUP_KINDS:
        if reward.metric == "time_saved":
            return (lambda r: r < 1.0), "time-saved reward (1 - 1/speed-up, < 1)"
        return (lambda r: r > 0.0), f"{reward.kind} reward (a speed-up, > 0)"
    return None


def check_frame(table: str, frame: pd.DataFrame, metadata: LogMetadata, types: pa.Schema | None = None) -> list[Problem]:
    """Every broken invariant of ``frame`` as a ``table`` of a log with ``metadata``.

    ``types`` is the Arrow schema the rows have (or will be written with); when omitted only the
    value checks run.
    """
    problems = check_types(table, types) if types is not None else []
    present = set(frame.columns)
    for col in columns(table):
        if col.name in present and not col.nullable:
            mask = frame[col.name].isna().to_numpy()
            if mask.any():
                problems.append(_bad(table, col.name, "are null or NaN; the column is required", frame, mask))
    if "arm" in present:
        arms = frame["arm"].astype(object)
        mask = (~arms.isin(metadata.arm_names) & arms.notna()).to_numpy()
        if mask.any():
            unknown = sorted({str(a) for a in arms[mask]})[:5]
            problems.append(
                _bad(table, "arm", f"name arms the metadata does not list ({', '.join(unknown)}; listed: {', '.join(metadata.arm_names)})", frame, mask)
            )
    for name in ("reward", "propensity"):
        if name in present:
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            mask = ~np.isfinite(values) & frame[name].notna().to_numpy()
            if mask.any():
                problems.append(_bad(table, name, "are NaN or infinite; must be finite", frame, mask))
    if "reward" in present:
        bound = reward_bound(metadata)
        if bound is not None:
            test, what = bound
            r = pd.to_numeric(frame["reward"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            mask = np.isfinite(r) & ~test(r)
            if mask.any():
                problems.append(_bad(table, "reward", f"are outside the range of a {what}", frame, mask))
    if "propensity" in present:
        p = pd.to_numeric(frame["propensity"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        mask = np.isfinite(p) & ((p <= 0) | (p > 1))
        if mask.any():
            problems.append(_bad(table, "propensity", "are outside (0, 1]", frame, mask))
    if "n_prompt_tokens" in present:
        n = pd.to_numeric(frame["n_prompt_tokens"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        mask = frame["n_prompt_tokens"].notna().to_numpy() & ~(n >= 1)
        if mask.any():
            problems.append(_bad(table, "n_prompt_tokens", "are not a count >= 1 (a prompt has at least one token)", frame, mask))
    if "split" in present:
        s = frame["split"].astype(object)
        mask = (s.notna() & ~s.isin(SPLITS)).to_numpy()
        if mask.any():
            problems.append(_bad(table, "split", f"are not one of {', '.join(SPLITS)} (or null)", frame, mask))
    key = KEYS[table]
    if all(k in present for k in key):
        mask = frame.duplicated(list(key), keep="first").to_numpy()
        if mask.any():
            problems.append(_bad(table, "+".join(key), f"repeat a ({', '.join(key)}) key already present", frame, mask))
    if "query_id" in present:
        for name in ("prompt", "domain", "split"):
            if name in present:
                n_distinct = frame.groupby("query_id", sort=False, observed=True)[name].nunique(dropna=False)
                bad_ids = set(n_distinct.index[n_distinct.to_numpy() > 1])
                if bad_ids:
                    mask = frame["query_id"].isin(bad_ids).to_numpy()
                    problems.append(_bad(table, name, "disagree with other rows of the same query_id", frame, mask))
    return problems




def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise equality of two object arrays where null equals null."""
    a_null, b_null = pd.isna(a), pd.isna(b)
    both = ~a_null & ~b_null
    eq = np.zeros(len(a), dtype=bool)
    eq[both] = [bool(x == y) for x, y in zip(a[both], b[both])]
    return (a_null & b_null) | eq


def check_query_agreement(table: str, frame: pd.DataFrame, reference: pd.DataFrame, reference_name: str) -> list[Problem]:
    """Rows of ``frame`` whose query-level columns disagree with ``reference`` rows of the same query_id.

    ``reference`` holds rows already in a log (possibly of the other table); its first row per
    ``query_id`` is taken as that query's values. Only columns present in both are compared.
    """
    problems: list[Problem] = []
    if "query_id" not in frame.columns or "query_id" not in reference.columns or not len(frame) or not len(reference):
        return problems
    ref = reference.drop_duplicates("query_id", keep="first").set_index("query_id")
    ids = frame["query_id"].astype(object).to_numpy()
    known = pd.Index(ref.index.astype(object)).get_indexer(ids)
    has = known >= 0
    for name in QUERY_LEVEL:
        if name not in frame.columns or name not in ref.columns:
            continue
        new = frame[name].astype(object).to_numpy()
        old = ref[name].astype(object).to_numpy()
        mask = np.zeros(len(frame), dtype=bool)
        if has.any():
            mask[has] = ~_same(new[has], old[known[has]])
        if mask.any():
            problems.append(_bad(table, name, f"disagree with {reference_name} rows of the same query_id", frame, mask))
    return problems
