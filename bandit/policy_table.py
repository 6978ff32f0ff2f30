"""A target policy given as a table of action probabilities (``bandit-log evaluate --policy-table``).

Open Bandit Pipeline users hold their evaluation policy as ``action_dist``: one row of action
probabilities per logged decision. This reads it from

- ``.npy``: a float array (n, n_arms) or OBP's (n, n_arms, 1), rows in the decisions' order;
- ``.csv`` / ``.parquet``: one column per arm, named as the arm (or ``p_<arm>``), and either a
  ``query_id`` column (rows matched to the decisions by id, any order), or context key columns
  (one row per context: a policy that depends only on, say, ``domain`` or an imported context
  column ``segment``, matched to the decisions' ``domain`` or ``x_segment``), or exactly one row
  per decision in the decisions' order. Context keys are context: a key named after what was
  logged or observed (``arm``, ``reward``, ``propensity``, ``policy_id``, the measured columns) is
  refused, since a policy cannot choose by the outcome of its own choice.

Each row must be non-negative and sum to 1 (within 1e-6). Problems name the file, the row and
what was found. A ``.npy`` file's shape and dtype are checked from its header before it is read
(``logging_data.records``), with ``allow_pickle=False``: an array of Python objects is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from logging_data.schema import QUERY_COLUMNS, columns

#: decisions columns that record the logged choice and what followed it: never a context key
NOT_CONTEXT = tuple(c.name for c in columns("decisions") if c.name not in {q.name for q in QUERY_COLUMNS})


class PolicyTableError(ValueError):
    """A policy table that cannot be used; the message names the file and the problem."""


def _check(p: Path, probs: np.ndarray, ids: Sequence[str] | None = None) -> np.ndarray:
    if not np.all(np.isfinite(probs)):
        i = int(np.flatnonzero(~np.isfinite(probs).all(axis=1))[0])
        raise PolicyTableError(f"{p}: row {i}{f' (query_id {ids[i]})' if ids is not None else ''} has a non-finite probability")
    if (probs < 0).any():
        i = int(np.flatnonzero((probs < 0).any(axis=1))[0])
        raise PolicyTableError(f"{p}: row {i}{f' (query_id {ids[i]})' if ids is not None else ''} has a negative probability")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if bad.size:
        i = int(bad[0])
        raise PolicyTableError(f"{p}: each row's probabilities must sum to 1; {bad.size} row(s) do not, first row {i}"
                               f"{f' (query_id {ids[i]})' if ids is not None else ''} sums to {sums[i]:.6g}")
    return probs.astype(np.float64)


def load_policy_table(path: str | os.PathLike, decisions: pd.DataFrame, arm_names: Sequence[str]) -> tuple[str, np.ndarray]:
    """(name, probabilities (n_decisions, n_arms) aligned with ``decisions`` rows); name = the file's stem."""
    p = Path(path)
    if not p.is_file():
        raise PolicyTableError(f"{p}: no such file (a policy table is a .npy, .csv or .parquet file)")
    arms = [str(a) for a in arm_names]
    n = len(decisions)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return p.stem, _check(p, _read_npy(p, n, arms))
    if suffix not in (".csv", ".parquet", ".pq"):
        raise PolicyTableError(f"{p}: a policy table is a .npy, .csv or .parquet file; got {suffix or 'no suffix'}")
    try:
        frame = pd.read_csv(p) if suffix == ".csv" else pd.read_parquet(p)
    except (ValueError, OSError) as e:  # pandas' and pyarrow's parse errors are ValueErrors
        raise PolicyTableError(f"{p}: not a readable {'CSV' if suffix == '.csv' else 'Parquet'} file ({e})") from None
    cols = []
    for a in arms:
        if a in frame.columns:
            cols.append(a)
        elif f"p_{a}" in frame.columns:
            cols.append(f"p_{a}")
        else:
            raise PolicyTableError(f"{p}: no column for arm {a!r} (expected {a!r} or 'p_{a}'); the file has "
                                   f"{', '.join(map(str, frame.columns))}")
    if "query_id" in frame.columns:
        ids = frame["query_id"].astype(str)
        if ids.duplicated().any():
            raise PolicyTableError(f"{p}: query_id {ids[ids.duplicated()].iloc[0]!r} repeats; one row per query_id")
        table = frame.set_index(ids)[cols]
        want = decisions["query_id"].astype(str)
        missing = want[~want.isin(table.index)]
        if len(missing):
            raise PolicyTableError(f"{p}: no row for {len(missing)} logged query_id(s) (first: {missing.iloc[0]!r})")
        probs = table.loc[want.to_numpy()].to_numpy(dtype=np.float64)
        return p.stem, _check(p, probs, list(want))
    keys = [c for c in frame.columns if c not in cols]
    if keys:
        return p.stem, _by_context(p, frame, keys, cols, decisions)
    if len(frame) != n:
        raise PolicyTableError(f"{p}: {len(frame)} rows and no query_id column; expected one row per decision ({n}) in "
                               f"the decisions' order, a query_id column, or context key columns")
    return p.stem, _check(p, frame[cols].to_numpy(dtype=np.float64))


def _read_npy(p: Path, n: int, arms: list[str]) -> np.ndarray:
    """The (n, n_arms) float array of a ``.npy`` table (or OBP's (n, n_arms, 1)), its shape and dtype checked from
    the header (``logging_data.records.npy_header``) before it is read; never unpickled."""
    from logging_data.records import RecordError, npy_header

    try:
        shape, dtype = npy_header(p)
    except RecordError as e:
        raise PolicyTableError(f"{p}: not a plain numeric .npy array ({str(e).removeprefix(f'{p}: ')})") from None
    if dtype.kind not in "biuf":
        raise PolicyTableError(f"{p}: not a plain numeric .npy array (dtype {dtype})")
    if len(shape) == 3 and shape[2] != 1:
        raise PolicyTableError(f"{p}: shape {shape} has {shape[2]} positions; evaluate one position at a time "
                               f"(slice [:, :, k]) or save it as (n, n_arms)")
    if shape[:2] != (n, len(arms)) or len(shape) not in (2, 3):
        raise PolicyTableError(f"{p}: expected shape ({n}, {len(arms)}) = (decisions, arms {', '.join(arms)}); found {shape}")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise PolicyTableError(f"{p}: not a plain numeric .npy array ({e})") from None
    return np.asarray(arr.reshape(n, len(arms)), dtype=np.float64)


def _by_context(p: Path, frame: pd.DataFrame, keys: list, cols: list[str], decisions: pd.DataFrame) -> np.ndarray:
    """Probabilities per context key (``keys``: columns of the table that name decision columns), one row per decision."""
    matched = {}
    have = [c for c in decisions.columns if str(c).startswith("x_") or c in ("prompt", "domain", "split")]
    for k in keys:
        logged = str(k) in NOT_CONTEXT
        for name in ((f"x_{k}",) if logged else (str(k), f"x_{k}")):  # an imported context column of that name is context
            if name in decisions.columns:
                matched[k] = name
                break
        else:
            if logged:
                raise PolicyTableError(f"{p}: column {k!r} is the decisions' {k} column (what was logged or observed), not "
                                       f"a context; a policy table's key columns must be context columns (context "
                                       f"columns: {', '.join(have) or 'none'})")
            raise PolicyTableError(f"{p}: column {k!r} is neither an arm nor query_id, and the decisions have no column "
                                   f"{str(k)!r} or 'x_{k}' to match it as a context key (context columns: "
                                   f"{', '.join(have) or 'none'})")

    def normal(left: pd.Series, right: pd.Series) -> tuple[pd.Series, pd.Series]:
        if pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right):
            return left.astype(np.float64), right.astype(np.float64)
        return left.astype(str), right.astype(str)

    table = pd.DataFrame(index=frame.index)
    wanted = pd.DataFrame(index=decisions.index)
    for k, name in matched.items():
        table[str(k)], wanted[str(k)] = normal(frame[k], decisions[name])
    names = [str(k) for k in keys]
    repeated = table.duplicated(names)
    if repeated.any():
        i = int(np.flatnonzero(repeated.to_numpy())[0])
        raise PolicyTableError(f"{p}: context key {_key_text(table.iloc[i])} repeats (row {i}); one row per context")
    table = pd.concat([table, frame[cols].rename(columns=str)], axis=1)
    joined = wanted.reset_index(drop=True).merge(table, on=names, how="left", validate="many_to_one")
    missing = joined[cols].isna().all(axis=1).to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise PolicyTableError(f"{p}: no row for the context of {int(missing.sum())} decision(s) (first: row {i}, "
                               f"{_key_text(wanted.iloc[i])})")
    return _check(p, joined[cols].to_numpy(dtype=np.float64))


def _key_text(row: pd.Series) -> str:
    """``segment=2, domain='code'``: a context key as a person reads it."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in row.items())
