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
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: appends are not serialized across processes
    fcntl = None

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .files import fsync_dir, write_text_atomic
from .shards import Shard
from .schema import EXTRA_PREFIX, KEYS, METADATA_KEY, TABLES, LogMetadata, columns
from .validate import (QUERY_LEVEL, LogValidationError, Problem, ValidationReport, check_frame, check_query_agreement, check_types,
                       first_line)

METADATA_FILE = "_log.json"
TABLE_KEY = b"draftpick_table"
TMP_PREFIX = ".part-"
APPEND_LOCK = ".append.lock"  # held (blocking) by every append while it checks keys and writes its part
WRITER_LOCK = ".writer.lock"  # held (non-blocking) by a command writing the log for its whole run
CREATE_LOCK = ".create.lock"  # held (blocking) by shard writers while one of them creates the log
SHARD_LOCK = ".writer.shard-{index}-of-{count}.lock"  # held by the writer of one shard (with WRITER_LOCK shared)
LOCK_FILES = (APPEND_LOCK, WRITER_LOCK, CREATE_LOCK)
# Not Parquet, and not hidden: a reader pointed at the log's root (``pd.read_parquet("LOG")``, Spark)
# fails on it, naming it, instead of silently mixing the outcomes and decisions tables.
SIGNPOST_FILE = "README-read-LOG-outcomes-or-LOG-decisions.txt"
SIGNPOST_TEXT = ("This folder is a draftpick log. It holds two tables; read one of them:\n"
                 "  pd.read_parquet('LOG/outcomes')   or   pd.read_parquet('LOG/decisions')\n"
                 "Reading the folder itself would mix their rows. Metadata: _log.json. Contract: logging_data/schema.py.\n")
_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


class LogError(ValueError):
    """A log cannot be opened, created or appended to; the message says why."""


class LogBusyError(LogError):
    """Another process is writing the log (``Log.writer``); the message names it."""


@contextmanager
def file_lock(path: Path, blocking: bool, shared: bool = False) -> Iterator[int | None]:
    """An exclusive (or ``shared``) ``flock`` on ``path`` (created); yields the fd, or None when
    non-blocking and held by another process in a conflicting mode.

    The kernel drops the lock when the holder exits, ``kill -9`` included: no stale locks.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield None
                return
        yield fd
    finally:
        os.close(fd)


@contextmanager
def _flock_patiently(path: Path, attempts: int = 20, wait_s: float = 0.05) -> Iterator[int | None]:
    """A non-blocking exclusive ``flock`` tried ``attempts`` times: another writer's probe of the
    lock (``_held_shard_locks``) holds it for microseconds, which must not read as a live holder."""
    for attempt in range(attempts):
        with file_lock(path, blocking=False) as fd:
            if fd is not None or attempt == attempts - 1:
                yield fd
                return
        time.sleep(wait_s)


def _part(path: Path, read, *args, **kwargs):
    """``read(path, ...)`` of one Parquet part (``pq.read_table``, ``pq.read_schema``, ``pq.ParquetFile``);
    an unreadable part raises ``LogError`` naming the file and what to do."""
    try:
        return read(path, *args, **kwargs)
    except (pa.ArrowException, OSError) as e:
        raise LogError(f"{path}: not a readable Parquet part ({first_line(e)}); a part is only ever written whole, so this "
                       f"file was changed or truncated outside draftpick: move it out of the log (the other parts stay "
                       f"valid)") from None


def _first_clash(parts: list[Path], tables: list[pa.Table]) -> str:
    """The first column whose type differs between two parts, named with both files."""
    seen: dict[str, tuple[pa.DataType, Path]] = {}
    for p, t in zip(parts, tables):
        for f in t.schema:
            if f.name in seen and seen[f.name][0] != f.type and not pa.types.is_null(f.type) and not pa.types.is_null(seen[f.name][0]):
                return f"column {f.name!r} is {seen[f.name][0]} in {seen[f.name][1].name} but {f.type} in {p.name}"
            seen.setdefault(f.name, (f.type, p))
    return "their schemas differ"


def check_new_log_path(path: str | os.PathLike) -> None:
    """``LogError`` unless a log can be created at ``path``: absent, or an empty directory.

    Writers call it before any expensive work when their output is not a log yet."""
    root = Path(path)
    if (root / METADATA_FILE).exists():
        return
    if root.exists() and not root.is_dir():
        raise LogError(f"{root}: exists and is not a directory")
    found = sorted(p.name for p in root.iterdir() if not is_ours(p.name)) if root.is_dir() else []
    if found:
        raise LogError(f"{root}: a directory that is not empty and is not a log (it holds {', '.join(found[:3])}"
                       f"{'...' if len(found) > 3 else ''}); a log is created in a new or empty directory")


def is_ours(name: str) -> bool:
    """What a log's directory may hold before its ``_log.json`` exists: lock files, the signpost,
    and the temporary files of another process that is writing those two right now (shard
    writers starting together)."""
    if name in LOCK_FILES or name == SIGNPOST_FILE or (name.startswith(".writer.shard-") and name.endswith(".lock")):
        return True
    return name.endswith(".tmp") and name.startswith((f".{METADATA_FILE}.", f".{SIGNPOST_FILE}."))


def _holder(path: Path) -> str:
    """Who holds a writer lock, from the JSON its holder wrote into the lock file."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        holder = {}
    return f"pid {holder.get('pid', '?')}, `{holder.get('command', '?')}`, since {holder.get('since', '?')}"


def _sign(fd: int, command: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command, "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)


def _held_shard_locks(root: Path) -> list[tuple[str, Path]]:
    """The shard writer locks under ``root`` that some process holds now (probed without waiting)."""
    held = []
    for path in sorted(root.glob(".writer.shard-*-of-*.lock")):
        with file_lock(path, blocking=False) as fd:
            if fd is None:
                held.append((path.name[len(".writer.shard-"):-len(".lock")].replace("-of-", "/"), path))
    return held


@contextmanager
def creating(path: str | os.PathLike) -> Iterator[None]:
    """Serialize the creation of a log at ``path`` between processes (shard writers starting together).

    Makes the directory and holds ``.create.lock`` in it: the first process creates the log, the
    others wait and then find it (open it instead of creating a second one).
    """
    root = Path(path)
    check_new_log_path(root)
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / CREATE_LOCK, blocking=True):
        yield


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
    check_new_log_path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / SIGNPOST_FILE, SIGNPOST_TEXT)
    write_text_atomic(meta_path, json.dumps(metadata.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
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

    Missing nullable columns become nulls. Values convert only within their kind: integers and
    floats to float64 columns, integers (or integral floats) to int64 columns, booleans to bool
    columns, text to string columns, datetimes to timestamps (naive datetimes are taken as UTC).
    Anything else (numbers as text, booleans as rewards, ints as query ids) raises
    ``LogValidationError`` naming every offending column.
    """
    arrow, problems = _to_arrow(table, frame)
    if problems:
        raise LogValidationError(problems, context=f"cannot convert rows to {table}")
    return arrow


def _kind_ok(found: pa.DataType, expected: pa.DataType) -> bool:
    """Whether values inferred as ``found`` may be cast to the declared ``expected`` type."""
    t = pa.types
    if t.is_null(found):
        return True
    if t.is_floating(expected):
        return t.is_integer(found) or t.is_floating(found)
    if t.is_integer(expected):
        return t.is_integer(found) or t.is_floating(found)  # a safe cast refuses 1.5 and overflow
    if t.is_boolean(expected):
        return t.is_boolean(found)
    if t.is_string(expected):
        return t.is_string(found) or t.is_large_string(found)
    if t.is_timestamp(expected):
        return t.is_timestamp(found)
    return found == expected  # pragma: no cover - every declared type is handled above


def _type_word(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytes"
    if pa.types.is_boolean(t):
        return "boolean"
    return str(t)


def _convert(table: str, name: str, series: pd.Series, expected: pa.DataType) -> tuple[pa.Array | None, Problem | None]:
    """One column converted to ``expected``, or the problem that prevents it."""
    try:
        arr = pa.array(series, from_pandas=True)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError) as exc:
        return None, Problem(table, name, f"expected {expected}, found values of dtype {series.dtype} that do not convert ({str(exc).splitlines()[0][:120]})")
    if not _kind_ok(arr.type, expected):
        return None, Problem(table, name, f"expected {expected}, found {_type_word(arr.type)} values (dtype {series.dtype}); convert them explicitly")
    try:
        return arr.cast(expected, safe=True), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        return None, Problem(table, name, f"expected {expected}, found {arr.type} values that do not convert exactly ({str(exc).splitlines()[0][:120]})")


def _normalize_extra(arr: pa.Array) -> pa.Array:
    """One Arrow type per kind of extra, whatever pandas dtype the values came in: categories
    are decoded, large strings/binaries become plain ones (pandas 3 ``str`` gives large_string,
    ``object`` gives string), so the same extra keeps the same type from append to append."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    elif pa.types.is_large_binary(arr.type):
        arr = arr.cast(pa.binary())
    return arr


def _to_arrow(table: str, frame: pd.DataFrame) -> tuple[pa.Table | None, list[Problem]]:
    problems: list[Problem] = []
    arrays, fields = [], []
    n = len(frame)
    names = list(frame.columns)
    declared = {c.name for c in columns(table)}
    bad_names = [c for c in names if not isinstance(c, str)]
    if bad_names:
        problems.append(Problem(table, str(bad_names[0]), f"column names must be strings; found {type(bad_names[0]).__name__}"))
    repeated = sorted({c for c in names if isinstance(c, str) and names.count(c) > 1})
    if repeated:
        problems.append(Problem(table, repeated[0], f"column name(s) appear more than once: {', '.join(repeated)}"))
        return None, problems
    for col in columns(table):
        if col.name not in frame.columns:
            if not col.nullable:
                problems.append(Problem(table, col.name, f"missing required column (expected {col.type})"))
                continue
            arrays.append(pa.nulls(n, type=col.type))
        else:
            arr, problem = _convert(table, col.name, frame[col.name], col.type)
            if problem is not None:
                problems.append(problem)
                continue
            arrays.append(arr)
        fields.append(col.field())
    for name in names:
        if not isinstance(name, str) or name in declared:
            continue
        if not name.startswith(EXTRA_PREFIX):
            problems.append(Problem(table, name, f"undeclared column (declared columns are fixed; user extras must start with {EXTRA_PREFIX!r})"))
            continue
        try:
            arr = pa.array(frame[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError) as exc:
            problems.append(Problem(table, name, f"extra column values of dtype {frame[name].dtype} have no single Arrow type ({str(exc).splitlines()[0][:120]})"))
            continue
        arr = _normalize_extra(arr)
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
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

    def remove_stale_temporaries(self, command: str = "remove_stale_temporaries") -> int:
        """Delete temporary files left by interrupted appends; returns how many.

        Holds the log as a writer does (``writer``: ``LogBusyError`` naming the holder while a
        build, shard, decode, simulate or import writes it, and nothing is removed) and the append
        lock, so a part being written right now is never taken for a leftover."""
        with self.writer(command, busy_advice="nothing was removed: clean once the writing has finished"):
            with file_lock(self.root / APPEND_LOCK, blocking=True):
                stale = self.stale_temporaries()
                for p in stale:
                    p.unlink(missing_ok=True)
        return len(stale)

    @contextmanager
    def writer(self, command: str, shard: "Shard | None" = None,
               busy_advice: str = "wait until the writing has finished, or write to another log") -> Iterator["Log"]:
        """Hold the log for one writing command, or raise ``LogBusyError`` naming the one holding it.

        ``build``, ``simulate``, ``decode`` and ``import`` take it for their whole run, so a second
        writer is refused at once with the first's pid and command instead of racing it. The
        lock (``.writer.lock``, an ``flock``) dies with its process, ``kill -9`` included.

        With ``shard`` (``logging_data.shards.Shard``) writers of *different* shards of the same
        count share the log: each holds ``.writer.lock`` shared and its own shard's lock
        exclusively. A second writer of the same shard, a writer of another shard count (its keys
        would overlap) and an unsharded writer are refused while it runs, and it is refused
        while an unsharded writer runs. ``busy_advice`` ends the refusal's message (what to do).
        """
        path = self.root / WRITER_LOCK
        if not (self.root / SIGNPOST_FILE).exists():  # a log made before the signpost existed
            write_text_atomic(self.root / SIGNPOST_FILE, SIGNPOST_TEXT)
        with file_lock(path, blocking=False, shared=shard is not None) as fd:
            if fd is None:
                if shard is None and _held_shard_locks(self.root):
                    shards = ", ".join(f"shard {name} ({_holder(p)})" for name, p in _held_shard_locks(self.root))
                    raise LogBusyError(f"{self.root}: shard writers are writing this log ({shards}); {busy_advice}")
                raise LogBusyError(f"{self.root}: another process is writing this log ({_holder(path)}); {busy_advice}")
            if shard is None:
                _sign(fd, command)
                yield self
                return
            own = self.root / SHARD_LOCK.format(index=shard.index, count=shard.count)
            with _flock_patiently(own) as sfd:
                if sfd is None:
                    raise LogBusyError(f"{self.root}: another process is writing shard {shard} of this log ({_holder(own)}); "
                                       f"wait for it to finish")
                others = [(name, p) for name, p in _held_shard_locks(self.root)
                          if int(name.split("/")[1]) != shard.count]
                if others:
                    name, p = others[0]
                    raise LogBusyError(f"{self.root}: a writer of shard {name} is writing this log ({_holder(p)}); shards "
                                       f"of {shard.count} would overlap its keys: use the same shard count")
                _sign(sfd, command)
                yield self

    def has(self, table: str) -> bool:
        return bool(self.parts(table))

    # -- reading --------------------------------------------------------------------------
    def read_arrow(self, table: str, columns_: Iterable[str] | None = None) -> pa.Table:
        parts = self.parts(table)
        cols = list(columns_) if columns_ is not None else None
        if not parts:
            schema = pa.schema([c.field() for c in columns(table) if cols is None or c.name in cols])
            return schema.empty_table()
        declared = {c.name: c for c in columns(table)}
        if cols is None:
            tables = [_part(p, pq.read_table) for p in parts]
        else:  # an x_ extra (or a column newer than the log) may be in some parts only: nulls elsewhere
            schemas = [_part(p, pq.read_schema) for p in parts]
            missing = [c for c in cols if not any(c in sc.names for sc in schemas) and c not in declared]
            if missing:
                raise LogError(f"{self.root}/{table}: no column {', '.join(map(repr, missing))}; the table has {', '.join(schemas[0].names)}")
            tables = [_part(p, pq.read_table, columns=[c for c in cols if c in sc.names]) for p, sc in zip(parts, schemas)]
        try:
            merged = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise LogError(f"{self.root}/{table}: its parts cannot be read as one table: {_first_clash(parts, tables)} "
                           f"({str(e).splitlines()[0]}); `bandit-log validate {self.root}` lists every problem") from None
        for name, col in declared.items():  # columns added after the log's schema version: nulls
            if name not in merged.column_names and (cols is None or name in cols):
                merged = merged.append_column(col.field(), pa.nulls(merged.num_rows, type=col.type))
        return (merged.select(cols) if cols is not None else merged).replace_schema_metadata(None)

    def read(self, table: str, columns_: Iterable[str] | None = None) -> pd.DataFrame:
        """All rows of ``table`` as a DataFrame (nullable Int64/boolean for int/bool columns)."""
        return self.read_arrow(table, columns_).to_pandas(types_mapper=_PANDAS_TYPES.get)

    def keys(self, table: str) -> set[tuple[str, str]]:
        """The (query_id, arm) or (query_id, policy_id) keys already written to ``table``."""
        key = KEYS[table]
        t = self.read_arrow(table, key)
        return set(zip(t.column(key[0]).to_pylist(), t.column(key[1]).to_pylist()))

    def n_rows(self, table: str) -> int:
        return sum(_part(p, pq.ParquetFile).metadata.num_rows for p in self.parts(table))

    def query_rows(self, table: str, query_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per query_id of ``table`` with its query-level columns (first row wins).

        With ``query_ids`` only those queries are returned.
        """
        cols = [c.name for c in columns(table) if c.name in ("query_id",) + QUERY_LEVEL]
        t = self.read_arrow(table, cols)
        if query_ids is not None:
            t = t.filter(pc.is_in(t.column("query_id"), value_set=pa.array(list(query_ids), type=pa.string())))
        return t.to_pandas().drop_duplicates("query_id", keep="first").reset_index(drop=True)

    def extra_types(self, table: str) -> dict[str, tuple[pa.DataType, str]]:
        """The Arrow type of every ``x_`` extra column in the parts of ``table`` (and the first part with it)."""
        found: dict[str, tuple[pa.DataType, str]] = {}
        for part in self.parts(table):
            for f in _part(part, pq.read_schema):
                if f.name.startswith(EXTRA_PREFIX) and not pa.types.is_null(f.type):
                    found.setdefault(f.name, (f.type, part.name))
        return found

    # -- writing --------------------------------------------------------------------------
    def _check_against_log(self, table: str, arrow: pa.Table) -> list[Problem]:
        """What new rows (already converted and checked on their own) break against the log on disk."""
        problems: list[Problem] = []
        if not any(self.has(t) for t in TABLES):
            return problems
        key = KEYS[table]
        new_keys = list(zip(arrow.column(key[0]).to_pylist(), arrow.column(key[1]).to_pylist()))
        existing = self.keys(table)
        clash = np.array([k in existing for k in new_keys], dtype=bool)
        if clash.any():
            names = tuple(f"row {i} query_id={new_keys[i][0]}" for i in np.flatnonzero(clash)[:3])
            problems.append(
                Problem(table, "+".join(key), f"{int(clash.sum())} row(s) repeat a ({', '.join(key)}) key already in the log", int(clash.sum()), names)
            )
        new = arrow.select([c for c in ("query_id",) + QUERY_LEVEL if c in arrow.column_names]).to_pandas()
        ids = set(new["query_id"].astype(object))
        for other in TABLES:
            if self.has(other):
                problems += check_query_agreement(table, new, self.query_rows(other, ids), f"{other}")
        earlier_types = self.extra_types(table)
        for f in arrow.schema:
            if f.name.startswith(EXTRA_PREFIX) and not pa.types.is_null(f.type):
                earlier = earlier_types.get(f.name)
                if earlier is not None and earlier[0] != f.type:
                    problems.append(
                        Problem(table, f.name, f"extra column has type {earlier[0]} in earlier parts (first: {earlier[1]}); found {f.type}")
                    )
        return problems

    def append(self, table: str, frame: pd.DataFrame) -> Path | None:
        """Check ``frame`` and add it to ``table`` as one new part, atomically.

        Raises ``LogValidationError`` listing every problem (nothing is written then). Returns
        the new part's path, or None for an empty frame. The check against the keys already
        written and the write of the part happen under one lock on the log (``.append.lock``), so
        processes appending at the same time are serialized and a key is never written twice: the
        later append of a duplicate key raises.
        """
        self.table_dir(table)  # an unknown table name: LogError before anything else
        if not isinstance(frame, pd.DataFrame):
            raise LogValidationError([Problem(table, "", f"expected a pandas DataFrame, found {type(frame).__name__}")])
        arrow, problems = _to_arrow(table, frame)
        if not frame.columns.duplicated().any():  # value checks need one column per name
            problems += check_frame(table, frame.reset_index(drop=True), self.metadata)
        if problems:
            raise LogValidationError(problems, context=f"cannot append to {self.root}/{table}")
        if arrow.num_rows == 0:
            return None
        with file_lock(self.root / APPEND_LOCK, blocking=True):  # keys checked and part written as one step
            problems = self._check_against_log(table, arrow)
            if problems:
                raise LogValidationError(problems, context=f"cannot append to {self.root}/{table}")
            return self._write_part(table, arrow)

    def _write_part(self, table: str, arrow: pa.Table) -> Path:
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
        fsync_dir(d)
        return final


def read_table(path: str | os.PathLike, table: str) -> pd.DataFrame:
    return open_log(path).read(table)


def validate_log(path: str | os.PathLike) -> ValidationReport:
    """Check a whole log on disk; every problem is reported, nothing raises for a bad log.

    Beyond the row invariants of ``check_frame`` (per table, across all parts) it checks every
    part's footer metadata and column types, files in a table directory that plain readers would
    pick up but that are not parts of the log, ``x_`` extras whose type differs between parts,
    and query-level columns that disagree between the two tables.
    """
    report = ValidationReport(path=str(path))
    try:
        log = open_log(path)
    except LogError as exc:
        report.problems.append(Problem("log", "", str(exc)))
        return report
    merged = {table: _validate_table(log, table, report) for table in TABLES}
    if merged["outcomes"] is not None and merged["decisions"] is not None:
        report.problems.extend(check_query_agreement("decisions", merged["decisions"], merged["outcomes"], "outcomes"))
    stale = log.stale_temporaries()
    if stale:
        report.notes.append(
            f"{len(stale)} temporary file(s) from interrupted appends (harmless, invisible to readers; "
            f"remove with `bandit-log validate --clean`): {stale[0].name}"
        )
    return report


VALIDATED_FILE = ".validated.json"  # the fingerprint of the log as last found valid (require_valid_log's fast path)


def fingerprint(path: str | os.PathLike) -> dict | None:
    """What identifies a log's contents on disk: this package's schema version, ``_log.json`` and
    every file of the table directories, each by name, size and modification time (ns). None when
    the log cannot be listed. Appends add a part and ``--clean`` removes files, so both change it."""
    root = Path(path)
    try:
        files = [root / METADATA_FILE] + sorted(e for t in TABLES if (root / t).is_dir() for e in (root / t).iterdir()
                                                 if not e.name.startswith(TMP_PREFIX))
        stats = [(str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    except OSError:
        return None
    from .schema import SCHEMA_VERSION

    return {"schema_version": SCHEMA_VERSION, "files": stats}


def require_valid_log(path: str | os.PathLike) -> None:
    """``validate_log``, raising ``LogValidationError`` (the first problems, the log named) when the
    log breaks its contract: readers call it first, so bad rows are never silently dropped.

    Fast path for big logs: a log found valid records its ``fingerprint`` in ``.validated.json``;
    while nothing in it has changed since (no part added, removed, resized or touched), the check
    is skipped. A log on a read-only path is simply validated every time.
    """
    root = Path(path)
    before = fingerprint(root)
    try:
        recorded = json.loads((root / VALIDATED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if before is not None and recorded == json.loads(json.dumps(before)):
        return
    report = validate_log(path)
    if not report.ok:
        raise LogValidationError(report.problems[:5], context=f"{path} breaks the log contract "
                                 f"(`bandit-log validate {path}` lists all {len(report.problems)})")
    if before is not None and fingerprint(root) == before:  # nothing was appended while it was checked
        try:
            write_text_atomic(root / VALIDATED_FILE, json.dumps(before) + "\n")
        except OSError:
            pass


def _validate_table(log: Log, table: str, report: ValidationReport) -> pd.DataFrame | None:
    """Check one table's parts into ``report``; return its rows (None when it has none readable)."""
    parts = log.parts(table)
    report.n_parts[table] = len(parts)
    report.n_rows[table] = 0
    d = log.table_dir(table)
    if d.exists():
        part_names = {p.name for p in parts}
        for entry in sorted(d.iterdir()):
            if entry.name.startswith(("_", ".")) or entry.name in part_names:
                continue
            report.problems.append(
                Problem(table, "", f"{entry.name}: not a part of this log (parts are files named part-*.parquet) but visible to pandas, pyarrow and DuckDB; move it out of {d}")
            )
    frames = []
    for part in parts:
        frame = _validate_part(log, table, part, report)
        if frame is not None:
            frames.append(frame)
    if not frames:
        return None
    try:
        merged = pa.concat_tables(frames, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        report.problems.append(Problem(table, "", f"parts have columns of conflicting types, so they cannot be read as one table ({str(exc).splitlines()[0][:160]})"))
        declared = [c.name for c in columns(table)]
        merged = pa.concat_tables([f.select(declared) for f in frames])
    rows = merged.to_pandas(types_mapper=_PANDAS_TYPES.get)
    report.n_rows[table] = len(rows)
    report.problems.extend(check_frame(table, rows, log.metadata))
    return rows


def _validate_part(log: Log, table: str, part: Path, report: ValidationReport) -> pa.Table | None:
    """Check one part's footer and types into ``report``; return its rows, or None if unreadable."""
    try:
        pf = pq.ParquetFile(part)
        data = pf.read()
    except Exception as exc:  # a corrupt file, whatever pyarrow raises: report it, go on
        report.problems.append(Problem(table, "", f"{part.name}: unreadable Parquet ({str(exc).splitlines()[0][:160]})"))
        return None
    kv = pf.schema_arrow.metadata or {}
    if METADATA_KEY not in kv:
        report.problems.append(Problem(table, "", f"{part.name}: footer carries no {METADATA_KEY.decode()} metadata"))
    else:
        try:
            part_meta = json.loads(kv[METADATA_KEY])
        except (json.JSONDecodeError, UnicodeDecodeError):
            part_meta = None
        if part_meta != log.metadata.to_json():
            report.problems.append(Problem(table, "", f"{part.name}: footer metadata differs from {METADATA_FILE}"))
    if TABLE_KEY in kv and kv[TABLE_KEY] != table.encode("utf-8"):
        found = kv[TABLE_KEY].decode("utf-8", errors="replace")
        report.problems.append(Problem(table, "", f"{part.name}: footer says it is a part of {found!r}, found in {table}/"))
    for p in check_types(table, pf.schema_arrow, log.metadata.schema_version):
        report.problems.append(Problem(p.table, p.column, f"{part.name}: {p.message}"))
    return _conform(table, data.replace_schema_metadata(None))


def _conform(table: str, data: pa.Table) -> pa.Table:
    """``data`` with every declared column in its declared type, so that the value checks can run
    over all parts: missing columns become nulls, castable ones are cast (dictionary or large
    strings, other numeric widths), the rest become nulls (their type problem is reported
    separately). ``x_`` extras are kept as found; other undeclared columns are dropped."""
    arrays, fields = [], []
    for col in columns(table):
        arr = None
        if col.name in data.column_names:
            found = data.column(col.name)
            try:
                arr = found.cast(col.type, safe=True) if found.type != col.type else found
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                arr = None
        arrays.append(arr if arr is not None else pa.nulls(data.num_rows, type=col.type))
        fields.append(pa.field(col.name, col.type))
    for f in data.schema:
        if f.name.startswith(EXTRA_PREFIX):
            arrays.append(data.column(f.name))
            fields.append(f)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
