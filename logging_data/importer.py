"""Bandit feedback logged anywhere, imported as a decisions log (``bandit-log import``).

A file of logged decisions (CSV, Parquet or JSON Lines: one row per decision) becomes a log with
only a ``decisions`` table, which every estimator, ``evaluate`` and the HTML report read:

- ``action`` (required): the logged action; any values, kept as text. The arms are the sorted
  distinct values (numbers in numeric order), or ``arms`` in the given order;
- ``reward`` (required): a finite number per row;
- ``propensity`` (required): the logging policy's probability of the logged action, in (0, 1];
- ``context`` columns (optional, numeric): kept as ``x_<name>`` columns; ``bandit-log evaluate
  --features context`` fits the DM/DR reward model on them;
- ``position`` (optional, Open Bandit Dataset style): kept as ``x_position``;
- ``query_id`` / ``prompt`` / ``domain`` / ``split`` (optional): ids default to ``row-0000001``...,
  prompts to the empty string, splits to a seeded 60/20/20 draw from the ids.

The log's reward definition is ``custom`` with a description (given, or naming the file and
column). Every mapping mistake names the option, the column and what the file has.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .io import Log, create_log
from .prompt_table import format_of, missing, read_rows, row_label, split_for
from .schema import Arm, LogMetadata, RewardDefinition


class ImportError_(ValueError):
    """The file cannot be imported with this mapping; the message names the option and the column."""


@dataclass(frozen=True)
class ImportMapping:
    """Which column holds what (CLI: ``--action``, ``--reward``, ``--propensity``, ``--context``, ...)."""

    action: str
    reward: str
    propensity: str
    context: tuple[str, ...] = field(default_factory=tuple)
    position: str | None = None
    query_id: str | None = None
    prompt: str | None = None
    domain: str | None = None
    split: str | None = None


def _arm_order(values: Sequence[str]) -> list[str]:
    def key(v: str):
        try:
            return (0, float(v), v)
        except ValueError:
            return (1, 0.0, v)

    return sorted(set(values), key=key)


def read_decisions(path: str | os.PathLike, mapping: ImportMapping, *, fmt: str | None = None, policy_id: str = "logged",
                   arms: Sequence[str] | None = None, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """The decisions rows of ``path`` under ``mapping`` (checked) and the arm names, in order."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    fmt = format_of(p, fmt, what="")
    if fmt == "txt":
        raise ImportError_(f"{p}: a text file holds prompts only; logged decisions come as csv, parquet or jsonl")
    raw = read_rows(p, fmt, what="")
    if raw.empty:
        raise ImportError_(f"{p}: holds no rows")
    found = ", ".join(map(str, raw.columns))
    roles = [("--action", mapping.action), ("--reward", mapping.reward), ("--propensity", mapping.propensity),
             ("--position", mapping.position), ("--id-col", mapping.query_id), ("--prompt-col", mapping.prompt),
             ("--domain-col", mapping.domain), ("--split-col", mapping.split)] + [("--context", c) for c in mapping.context]
    for flag, col in roles:
        if col is not None and col not in raw.columns:
            raise ImportError_(f"{p}: {flag} {col!r} is not a column; the file has {found}")

    def where(i: int) -> str:
        return row_label(fmt, i)

    def numeric(flag: str, col: str) -> np.ndarray:
        values = pd.to_numeric(raw[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ImportError_(f"{p}: {flag} {col!r} must hold finite numbers; {bad.size} row(s) do not, first at "
                               f"{where(int(bad[0]))}: {raw[col].iloc[int(bad[0])]!r}")
        return values

    actions = raw[mapping.action].map(lambda v: None if missing(v) else
                                      (str(int(v)) if isinstance(v, float) and float(v).is_integer() else str(v)))
    empty = np.flatnonzero(actions.isna().to_numpy())
    if empty.size:
        raise ImportError_(f"{p}: --action {mapping.action!r} is empty in {empty.size} row(s), first at {where(int(empty[0]))}")
    order = _arm_order(actions.tolist())
    if arms is not None:
        arms = [str(a) for a in arms]
        unknown = [a for a in order if a not in arms]
        if unknown:
            raise ImportError_(f"{p}: --action {mapping.action!r} has values not in --arms: {', '.join(unknown[:5])}")
        order = arms
    rewards = numeric("--reward", mapping.reward)
    props = numeric("--propensity", mapping.propensity)
    bad = np.flatnonzero((props <= 0) | (props > 1))
    if bad.size:
        raise ImportError_(f"{p}: --propensity {mapping.propensity!r} must be in (0, 1]; {bad.size} row(s) are not, first at "
                           f"{where(int(bad[0]))}: {float(props[int(bad[0])])!r}")
    if mapping.query_id is not None:
        ids = raw[mapping.query_id].astype(str)
        dup = ids.duplicated(keep=False).to_numpy()
        if dup.any():
            rows = np.flatnonzero(dup)
            raise ImportError_(f"{p}: --id-col {mapping.query_id!r} must be unique; {ids.iloc[int(rows[0])]!r} repeats "
                               f"({where(int(rows[0]))} and more)")
    else:
        ids = pd.Series([f"row-{i + 1:07d}" for i in range(len(raw))])
    frame = pd.DataFrame({
        "query_id": ids.to_numpy(),
        "prompt": raw[mapping.prompt].astype(str).to_numpy() if mapping.prompt else "",
        "domain": raw[mapping.domain].astype(str).to_numpy() if mapping.domain else None,
        "split": raw[mapping.split].astype(str).to_numpy() if mapping.split else [split_for(q, seed) for q in ids],
        "arm": actions.to_numpy(), "propensity": props, "reward": rewards, "policy_id": policy_id,
    })
    for col in mapping.context:
        frame[f"x_{col}"] = numeric("--context", col)
    if mapping.position is not None:
        frame["x_position"] = numeric("--position", mapping.position).astype(np.int64)
    return frame, order


def import_decisions(path: str | os.PathLike, out: str | os.PathLike, mapping: ImportMapping, *, fmt: str | None = None,
                     policy_id: str = "logged", arms: Sequence[str] | None = None, description: str | None = None,
                     seed: int = 0, command: str | None = None) -> Log:
    """Write the decisions log ``out`` from ``path`` (see the module docstring); returns it."""
    frame, order = read_decisions(path, mapping, fmt=fmt, policy_id=policy_id, arms=arms, seed=seed)
    desc = description or f"imported from {Path(path).name}: column {mapping.reward!r}"
    meta = LogMetadata(arms=tuple(Arm(name=a) for a in order), reward=RewardDefinition(kind="custom", metric="", description=desc),
                       extra={"import": {"file": str(path), "mapping": asdict(mapping),
                                         "n_rows": len(frame), "command": command}})
    log = create_log(out, meta)
    with log.writer(command or "import_decisions"):
        log.append("decisions", frame)
    return log
