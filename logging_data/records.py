"""The small files a command trusts, checked in one way: JSON records and plain arrays.

A command that reads a file it did not write in this run (a head's ``head.json``, a datastore's
``datastore.json``, a cost profile's calibration, a policy table's ``.npy``) trusts it only
after checking it here. A JSON record's schema is a tuple of ``Field``, declared next to the
code that writes the record; ``check_record`` reports every problem at once, each naming the
field, what was expected and what was found, after the file's name::

    head.json: hidden must be an integer in [1, 65536]; got 1000000000; n_blocks is missing (expected an integer in [1, 64])

Arrays are read from their ``.npy`` headers first (shape and dtype, no data), so a file that
holds Python objects (which only pickle can load) is refused by name before anything is read,
and a shape can be checked before the array is allocated. Nothing here ever unpickles.

numpy only: every layer may use it.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

#: a JSON record larger than this is not a record a command should read whole (bytes)
MAX_RECORD_BYTES = 16 << 20


class RecordError(ValueError):
    """A file that cannot be trusted; the message names the file, the field, what was expected and what was found."""


@dataclass(frozen=True)
class Field:
    """One field of a JSON record: its ``name``, the JSON ``types`` it may have (a bool is never an
    int or a float here), ``expect`` (what it must be, in words, for messages), ``test`` (the range
    a value of those types must be in), whether it is ``required``, and for an object, ``each``:
    the field every value of it must be (named ``name[key]``)."""

    name: str
    types: tuple[type, ...]
    expect: str
    test: Callable[[Any], bool] | None = None
    required: bool = True
    each: "Field | None" = None


def _bound(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def _interval(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_bound(lo)}, {_bound(hi)}]"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_bound(lo)}"
    return f"<= {_bound(hi)}" if hi is not None else ""


def integer(name: str, lo: int | None = None, hi: int | None = None, *, required: bool = True) -> Field:
    """An integer in ``[lo, hi]`` (either bound may be None)."""
    words = " ".join(w for w in ("an integer", _interval(lo, hi)) if w)
    return Field(name, (int,), words, lambda v: (lo is None or v >= lo) and (hi is None or v <= hi), required)


def number(name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, unit: str = "",
           required: bool = True) -> Field:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); ``unit``: "seconds" reads "a finite number of seconds"."""
    words = " ".join(w for w in (f"a finite number{f' of {unit}' if unit else ''}", _interval(lo, hi, lo_open)) if w)

    def test(v: float) -> bool:
        return math.isfinite(v) and (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or v <= hi)

    return Field(name, (int, float), words, test, required)


def text(name: str, choices: Sequence[str] = (), *, required: bool = True) -> Field:
    """A non-empty string; one of ``choices`` when given."""
    if choices:
        words = repr(choices[0]) if len(choices) == 1 else f"one of {', '.join(map(repr, choices))}"
        return Field(name, (str,), words, lambda v: v in choices, required)
    return Field(name, (str,), "a non-empty string", lambda v: bool(v.strip()), required)


def flag(name: str, *, required: bool = False) -> Field:
    """true or false."""
    return Field(name, (bool,), "true or false", None, required)


def mapping(name: str, expect: str = "an object", each: Field | None = None, *, required: bool = True) -> Field:
    """A JSON object; ``each``: the field every one of its values must be."""
    return Field(name, (dict,), expect, None, required, each)


def _type_ok(v: Any, types: tuple[type, ...]) -> bool:
    if isinstance(v, bool) and bool not in types:
        return False
    return isinstance(v, types)


def shown(v: Any, width: int = 60) -> str:
    """``repr(v)``, cut to ``width`` characters (a message quotes what was found, not a whole file)."""
    r = repr(v)
    return r if len(r) <= width else r[:width - 3] + "..."


def _value_problem(f: Field, name: str, v: Any) -> str | None:
    if not _type_ok(v, f.types):
        return f"{name} must be {f.expect}; got {shown(v)} ({type(v).__name__})"
    if f.test is not None and not f.test(v):
        return f"{name} must be {f.expect}; got {shown(v)}"
    return None


def record_problems(record: Mapping[str, Any], fields: Sequence[Field], missing_hint: str = "") -> list[str]:
    """Every problem of ``record`` against ``fields``, in field order; missing required fields first, together."""
    problems = []
    missing = [f.name for f in fields if f.required and f.name not in record]
    if missing:
        found = ", ".join(sorted(map(str, record))) or "no keys"
        problems.append(f"missing {', '.join(missing)} (found {found}{f'; {missing_hint}' if missing_hint else ''})")
    for f in fields:
        if f.name not in record:
            continue
        v = record[f.name]
        problem = _value_problem(f, f.name, v)
        if problem:
            problems.append(problem)
        elif f.each is not None:
            problems += [p for key, item in v.items() if (p := _value_problem(f.each, f"{f.name}[{key!r}]", item))]
    return problems


def check_record(record: Any, fields: Sequence[Field], where: str = "", missing_hint: str = "") -> None:
    """Raise ``RecordError`` naming every field of ``record`` that does not fit ``fields`` (``where``:
    the file or thing it came from, the message's prefix). Keys not in ``fields`` are allowed."""
    prefix = f"{where}: " if where else ""
    if not isinstance(record, Mapping):
        raise RecordError(f"{prefix}expected a JSON object; found {type(record).__name__}")
    problems = record_problems(record, fields, missing_hint)
    if problems:
        raise RecordError(prefix + "; ".join(problems))


def read_json_record(path: str | os.PathLike, fields: Sequence[Field] = (), missing_hint: str = "") -> dict[str, Any]:
    """The JSON object in the file ``path``, checked against ``fields``; ``RecordError`` naming the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    size = p.stat().st_size
    if size > MAX_RECORD_BYTES:
        raise RecordError(f"{p}: {size} bytes; a record is at most {MAX_RECORD_BYTES} bytes (is it the right file?)")
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{p}: not a JSON document ({exc})") from None
    check_record(record, fields, str(p), missing_hint)
    return record


# -- arrays ----------------------------------------------------------------------------------------
def _npy_header(fp: Any, where: str, size: int | None = None) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header at ``fp``; ``size``: the bytes the array's file holds, which its data must fit."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise ValueError(f"format version {version}; a plain array is written in version 1.0 or 2.0")
    except (ValueError, OSError, EOFError, SyntaxError, zlib.error) as exc:
        raise RecordError(f"{where}: not a .npy array ({exc})") from None
    if dtype.hasobject:
        raise RecordError(f"{where}: holds Python objects (dtype {dtype}), which only pickle can load, and nothing pickled "
                          f"is loaded; save a plain numeric array")
    shape = tuple(int(n) for n in shape)
    need = math.prod(shape) * dtype.itemsize
    if size is not None and need > size - fp.tell():
        raise RecordError(f"{where}: its header declares shape {list(shape)} of {dtype} ({need} bytes), but the file holds "
                          f"{max(size - fp.tell(), 0)} bytes of data")
    return shape, dtype


def npy_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the ``.npy`` file ``path``, read from its header alone; ``RecordError`` for a
    file that is not one or that holds Python objects."""
    p = Path(path)
    with open(p, "rb") as fp:
        return _npy_header(fp, str(p), p.stat().st_size)


def npz_headers(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Array name -> (shape, dtype) of every array in the ``.npz`` file ``path``, from the headers
    alone; ``RecordError`` naming the file (and the array) for a file that is not an ``.npz`` or an
    array that holds Python objects."""
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as z:
            out = {}
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    raise RecordError(f"{p}: holds {info.filename!r}, which is not an array (.npy); an .npz holds arrays only")
                with z.open(info) as fp:
                    out[info.filename[:-4]] = _npy_header(fp, f"{p}: array {info.filename[:-4]!r}", info.file_size)
            return out
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise RecordError(f"{p}: not an .npz archive ({exc})") from None


def load_npz(path: str | os.PathLike, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``names`` of the ``.npz`` file ``path`` (check them with ``npz_headers`` first), read
    with ``allow_pickle=False``; a read that fails names the file."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            return {n: data[n] for n in names}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise RecordError(f"{p}: cannot read its arrays ({exc})") from None
