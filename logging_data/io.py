"""Reading and writing logs: a directory of Parquet parts per table, appended atomically.

An append never rewrites what is there: it checks the new rows against the contract and against
the keys already written, writes one new part to a temporary file whose name starts with ``.``
(invisible to pandas, pyarrow and DuckDB), flushes it to disk, and renames it into place. A
crash or ``kill -9`` at any point leaves either the old log or the old log plus the whole new
part; never a partial part. Leftover temporary files are reported by ``validate_log`` and
removed by ``Log.remove_stale_temporaries``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import EXTRA_PREFIX, KEYS, METADATA_KEY, TABLES, LogMetadata, columns
from .validate import LogValidationError, Problem, ValidationReport, check_frame, check_types

METADATA_FILE = "_log.json"
TABLE_KEY = b"draftpick_table"
TMP_PREFIX = ".part-"
_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


class LogError(ValueError):
    """A log cannot be opened, created or appended to; the message says why."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def create_log(path: str | os.PathLike, metadata: LogMetadata, exist_ok: bool = False) -> "Log":
    """Create an empty log at ``path`` with ``metadata``.

    With ``exist_ok`` an existing log with equal metadata is opened instead; one with different
    metadata is an error (appending rows under another reward definition would mix meanings).
    """
    root = Path(path)
    meta_path = root / METADATA_FILE
    if meta_path.exists():
        if not exist_ok:
            raise LogError(f"{root}: a log already exists here; open it, or choose another path")
        log = open_log(root)
        if log.metadata.to_json() != metadata.to_json():
            raise LogError(
                f"{root}: the existing log's metadata differs from the requested one "
                f"(existing arms: {', '.join(log.metadata.arm_names)}; reward: {log.metadata.reward.to_json()}; "
                f"requested arms: {', '.join(metadata.arm_names)}; reward: {metadata.reward.to_json()})"
            )
        return log
    if root.exists() and not root.is_dir():
        raise LogError(f"{root}: exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(meta_path, json.dumps(metadata.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return Log(root, metadata)


def open_log(path: str | os.PathLike) -> "Log":
    """Open the log at ``path``; a clear error when it is not one."""
    root = Path(path)
    if not root.exists():
        raise LogError(f"{root}: no such log directory")
    if not root.is_dir():
        raise LogError(f"{root}: expected a log directory, found a file")
    meta_path = root / METADATA_FILE
    if not meta_path.exists():
        raise LogError(f"{root}: not a log (no {METADATA_FILE}); create one with `bandit-log build` or logging_data.create_log")
    try:
        metadata = LogMetadata.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LogError(f"{meta_path}: unreadable log metadata: {exc}") from None
    return Log(root, metadata)


def to_arrow(table: str, frame: pd.DataFrame) -> pa.Table:
    """Rows as an Arrow table with the declared schema of ``table`` plus ``x_`` extras.

    Missing nullable columns become nulls; values are cast to the declared types. Anything that
    cannot be made to fit raises ``LogValidationError`` naming every offending column.
    """
    arrow, problems = _to_arrow(table, frame)
    if problems:
        raise LogValidationError(problems, context=f"cannot convert rows to {table}")
    return arrow


def _to_arrow(table: str, frame: pd.DataFrame) -> tuple[pa.Table | None, list[Problem]]:
    problems: list[Problem] = []
    arrays, fields = [], []
    n = len(frame)
    undeclared = [c for c in frame.columns if not isinstance(c, str)]
    if undeclared:
        problems.append(Problem(table, str(undeclared[0]), "column names must be strings"))
    for col in columns(table):
        if col.name not in frame.columns:
            if not col.nullable:
                problems.append(Problem(table, col.name, f"missing required column (expected {col.type})"))
                continue
            arrays.append(pa.nulls(n, type=col.type))
        else:
            try:
                arrays.append(pa.array(frame[col.name], type=col.type, from_pandas=True))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
                found = frame[col.name].dtype
                problems.append(Problem(table, col.name, f"expected {col.type}, found values of dtype {found} that do not convert ({str(exc).splitlines()[0][:120]})"))
                continue
        fields.append(col.field())
    for name in frame.columns:
        if isinstance(name, str) and name not in {c.name for c in columns(table)}:
            if name.startswith(EXTRA_PREFIX):
                arr = pa.array(frame[name], from_pandas=True)
                arrays.append(arr)
                fields.append(pa.field(name, arr.type))
            else:
                problems.append(Problem(table, name, f"undeclared column (declared columns are fixed; user extras must start with {EXTRA_PREFIX!r})"))
    if problems:
        return None, problems
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)), []


def _part_metadata(table: str, metadata: LogMetadata) -> dict[bytes, bytes]:
    return {METADATA_KEY: metadata.dumps().encode("utf-8"), TABLE_KEY: table.encode("utf-8")}


class Log:
    """A log directory: its metadata and its tables. Create with ``create_log``/``open_log``."""

    def __init__(self, root: Path, metadata: LogMetadata) -> None:
        self.root = Path(root)
        self.metadata = metadata

    def __repr__(self) -> str:
        return f"Log({str(self.root)!r}, arms={list(self.metadata.arm_names)})"

    # -- layout ---------------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise LogError(f"table must be one of {', '.join(TABLES)}; got {table!r}")
        return self.root / table

    def parts(self, table: str) -> list[Path]:
        """The committed parts of ``table``, in append order."""
        d = self.table_dir(table)
        if not d.exists():
            return []
        return sorted(p for p in d.glob("part-*.parquet") if p.is_file())

    def stale_temporaries(self) -> list[Path]:
        return sorted(p for t in TABLES if self.table_dir(t).exists() for p in self.table_dir(t).glob(f"{TMP_PREFIX}*"))

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files left by interrupted appends. Only call with no append running."""
        stale = self.stale_temporaries()
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    def has(self, table: str) -> bool:
        return bool(self.parts(table))

    # -- reading --------------------------------------------------------------------------
    def read_arrow(self, table: str, columns_: Iterable[str] | None = None) -> pa.Table:
        parts = self.parts(table)
        cols = list(columns_) if columns_ is not None else None
        if not parts:
            schema = pa.schema([c.field() for c in columns(table) if cols is None or c.name in cols])
            return schema.empty_table()
        tables = [pq.read_table(p, columns=cols) for p in parts]
        return pa.concat_tables(tables, promote_options="permissive").replace_schema_metadata(None)

    def read(self, table: str, columns_: Iterable[str] | None = None) -> pd.DataFrame:
        """All rows of ``table`` as a DataFrame (nullable Int64/boolean for int/bool columns)."""
        return self.read_arrow(table, columns_).to_pandas(types_mapper=_PANDAS_TYPES.get)

    def keys(self, table: str) -> set[tuple[str, str]]:
        """The (query_id, arm) or (query_id, policy_id) keys already written to ``table``."""
        key = KEYS[table]
        t = self.read_arrow(table, key)
        return set(zip(t.column(key[0]).to_pylist(), t.column(key[1]).to_pylist()))

    def n_rows(self, table: str) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts(table))

    # -- writing --------------------------------------------------------------------------
    def append(self, table: str, frame: pd.DataFrame) -> Path | None:
        """Check ``frame`` and add it to ``table`` as one new part, atomically.

        Raises ``LogValidationError`` listing every problem (nothing is written then). Returns
        the new part's path, or None for an empty frame.
        """
        if not isinstance(frame, pd.DataFrame):
            raise LogValidationError([Problem(table, "", f"expected a pandas DataFrame, found {type(frame).__name__}")])
        arrow, problems = _to_arrow(table, frame)
        problems += check_frame(table, frame.reset_index(drop=True), self.metadata)
        key = KEYS[table]
        existing = self.keys(table)
        if existing and not problems:
            new_keys = list(zip(arrow.column(key[0]).to_pylist(), arrow.column(key[1]).to_pylist()))
            clash = np.array([k in existing for k in new_keys], dtype=bool)
            if clash.any():
                names = tuple(f"row {i} query_id={new_keys[i][0]}" for i in np.flatnonzero(clash)[:3])
                problems.append(
                    Problem(table, "+".join(key), f"{int(clash.sum())} row(s) repeat a ({', '.join(key)}) key already in the log", int(clash.sum()), names)
                )
        if problems:
            raise LogValidationError(problems, context=f"cannot append to {self.root}/{table}")
        if arrow.num_rows == 0:
            return None
        arrow = arrow.replace_schema_metadata(_part_metadata(table, self.metadata))
        d = self.table_dir(table)
        d.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = d / f"{TMP_PREFIX}{name}.tmp"
        final = d / name
        try:
            with open(tmp, "wb") as fh:
                pq.write_table(arrow, fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(d)
        return final


def read_table(path: str | os.PathLike, table: str) -> pd.DataFrame:
    return open_log(path).read(table)


def validate_log(path: str | os.PathLike) -> ValidationReport:
    """Check a whole log on disk; every problem is reported, nothing raises for a bad log."""
    report = ValidationReport(path=str(path))
    try:
        log = open_log(path)
    except LogError as exc:
        report.problems.append(Problem("log", "", str(exc)))
        return report
    expected_meta = log.metadata.to_json()
    for table in TABLES:
        parts = log.parts(table)
        report.n_parts[table] = len(parts)
        if not parts:
            report.n_rows[table] = 0
            continue
        frames = []
        for part in parts:
            try:
                pf = pq.ParquetFile(part)
            except Exception as exc:  # a corrupt file: report it, go on
                report.problems.append(Problem(table, "", f"{part.name}: unreadable Parquet ({exc})"))
                continue
            kv = pf.schema_arrow.metadata or {}
            if METADATA_KEY not in kv:
                report.problems.append(Problem(table, "", f"{part.name}: footer carries no {METADATA_KEY.decode()} metadata"))
            else:
                try:
                    part_meta = json.loads(kv[METADATA_KEY])
                except json.JSONDecodeError:
                    part_meta = None
                if part_meta != expected_meta:
                    report.problems.append(Problem(table, "", f"{part.name}: footer metadata differs from {METADATA_FILE}"))
            type_problems = check_types(table, pf.schema_arrow)
            for p in type_problems:
                report.problems.append(Problem(p.table, p.column, f"{part.name}: {p.message}"))
            frames.append(pf.read().replace_schema_metadata(None))
        if not frames:
            continue
        merged = pa.concat_tables(frames, promote_options="permissive").to_pandas(types_mapper=_PANDAS_TYPES.get)
        report.n_rows[table] = len(merged)
        report.problems.extend(check_frame(table, merged, log.metadata))
    stale = log.stale_temporaries()
    if stale:
        report.notes.append(
            f"{len(stale)} temporary file(s) from interrupted appends (harmless, invisible to readers; "
            f"remove with `bandit-log validate --clean`): {stale[0].name}"
        )
    return report
