"""Bandit feedback logged anywhere, imported as a decisions log (``bandit-log import``).

A file of logged decisions (CSV, Parquet or JSON Lines: one row per decision) becomes a log with
only a ``decisions`` table, which every estimator, ``evaluate`` and the HTML report read:

- ``action`` (required): the logged action; any values, kept as text. The arms are the sorted
  distinct values (numbers in numeric order), or ``arms`` in the given order;
- ``reward`` (required): a finite number per row, at most ``MAX_ABS_REWARD`` in magnitude;
- ``propensity`` (required): the logging policy's probability of the logged action, in (0, 1];
- ``context`` columns (optional, numeric): kept as ``x_<name>`` columns; a name with ``*``, ``?``
  or ``[...]`` is a glob over the file's columns (``user_feature_*``: every column it matches, in
  the file's order, the mapped action, reward, propensity, position and id columns left out; a
  glob matching nothing is an error). The log records the columns (``imported_context``), and
  ``bandit-log evaluate`` fits the DM/DR reward model on them by default (a context named
  ``position`` is refused: ``x_position`` is where ``--position`` goes);
- ``position`` (optional, Open Bandit Dataset style): a non-negative integer within int64, kept as
  ``x_position``;
- ``query_id`` / ``prompt`` / ``domain`` / ``split`` (optional): ids (never empty) default to
  ``row-0000001``..., prompts to the empty string, splits to a seeded 60/20/20 draw from the ids.

The propensities are then checked against how often each action is logged in each context (the
context columns, position, prompt and domain given; ``logging_data.propensities``): a
deterministic logger (propensity 1) that takes several actions in one context is refused, a clear
disagreement is a ``PropensityWarning`` with the numbers.

The log's reward definition is ``custom`` with a description (given, or naming the file and
column). Every mapping mistake names the option, the column and what the file has.
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .io import Log, create_log, open_log
from .outputs import LOG, check_output, publish, staged
from .prompt_table import format_of, missing, read_rows, row_label, split_for
from .propensities import PropensityWarning, check_propensities
from .schema import Arm, LogMetadata, RewardDefinition

#: characters that make a --context name a glob over the file's columns
GLOB_CHARS = "*?["

#: the largest reward magnitude imported: beyond it a value is a unit or parsing mistake (a
#: timestamp, an id, a sum over many decisions) rather than one decision's outcome, and its square
#: (in every interval's variance, times squared importance weights) leaves float64's exact range
MAX_ABS_REWARD = 1e12
#: positions are stored as int64
_INT64_MAX = 2**63 - 1


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


def expand_context(mapping: ImportMapping, columns: Sequence[str], where: str = "") -> ImportMapping:
    """``mapping`` with every glob of ``context`` (a name holding ``*``, ``?`` or ``[``) replaced by
    the ``columns`` it matches, in their order, leaving out the columns mapped to another role and
    any already named; a glob matching none is an ``ImportError_`` naming it and the columns."""
    if not any(ch in c for c in mapping.context for ch in GLOB_CHARS):
        return mapping
    taken = {mapping.action, mapping.reward, mapping.propensity, mapping.position, mapping.query_id, mapping.prompt,
             mapping.domain, mapping.split} - {None}
    out: list[str] = []
    for name in mapping.context:
        if not any(ch in name for ch in GLOB_CHARS):
            out.append(name)
            continue
        matched = [str(c) for c in columns if fnmatch.fnmatchcase(str(c), name) and str(c) not in taken]
        if not matched:
            raise ImportError_(f"{where}--context {name!r} matches no column; the file has {', '.join(map(str, columns))}")
        out.extend(matched)
    return replace(mapping, context=tuple(dict.fromkeys(out)))


def imported_context(metadata: LogMetadata) -> list[str]:
    """The decisions table's context columns (``x_NAME``) an import recorded in ``metadata``
    (the --context columns, globs expanded); [] for a log not imported or imported without any."""
    mapping = (metadata.extra.get("import") or {}).get("mapping") or {}
    return [f"x_{c}" for c in mapping.get("context") or ()]


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
    mapping = expand_context(mapping, list(raw.columns), f"{p}: ")
    found = ", ".join(map(str, raw.columns))
    roles = [("--action", mapping.action), ("--reward", mapping.reward), ("--propensity", mapping.propensity),
             ("--position", mapping.position), ("--id-col", mapping.query_id), ("--prompt-col", mapping.prompt),
             ("--domain-col", mapping.domain), ("--split-col", mapping.split)] + [("--context", c) for c in mapping.context]
    for flag, col in roles:
        if col is not None and col not in raw.columns:
            raise ImportError_(f"{p}: {flag} {col!r} is not a column; the file has {found}")
    if not str(policy_id).strip():
        raise ImportError_(f"--policy-id must be a non-empty name (it is recorded on every row); got {policy_id!r}")
    if "position" in mapping.context:
        clash = (f"and --position {mapping.position!r} would both be stored as x_position" if mapping.position is not None
                 else "would be stored as x_position, the column of --position (the slot position, which the reward "
                      "model leaves out)")
        raise ImportError_(f"{p}: --context 'position' {clash}; give the slot as --position and rename any other "
                           f"context column called position")

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
    huge = np.flatnonzero(np.abs(rewards) > MAX_ABS_REWARD)
    if huge.size:
        raise ImportError_(f"{p}: --reward {mapping.reward!r} must be at most {MAX_ABS_REWARD:g} in magnitude; {huge.size} "
                           f"row(s) are not, first at {where(int(huge[0]))}: {float(rewards[int(huge[0])])!r}")
    props = numeric("--propensity", mapping.propensity)
    bad = np.flatnonzero((props <= 0) | (props > 1))
    if bad.size:
        raise ImportError_(f"{p}: --propensity {mapping.propensity!r} must be in (0, 1]; {bad.size} row(s) are not, first at "
                           f"{where(int(bad[0]))}: {float(props[int(bad[0])])!r}")
    if mapping.query_id is not None:
        empty = np.flatnonzero(raw[mapping.query_id].map(missing).to_numpy(dtype=bool))
        if empty.size:
            raise ImportError_(f"{p}: --id-col {mapping.query_id!r} is empty in {empty.size} row(s), first at "
                               f"{where(int(empty[0]))}; every row needs an id")
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
        frame["x_position"] = _positions(raw[mapping.position], mapping.position, p, where)
    _check_feedback(frame, mapping, p, where)
    return frame, order


def _positions(column: pd.Series, name: str, p: Path, where) -> np.ndarray:
    """int64 (n,): the position column, every value a non-negative integer within int64 (else an error
    naming the flag, the column, the row and the value)."""
    def refuse(wrong: np.ndarray):
        i = int(wrong[0])
        return ImportError_(f"{p}: --position {name!r} must hold non-negative integers (within int64); {wrong.size} row(s) "
                            f"are not, first at {where(i)}: {column.iloc[i]!r}")

    parsed = pd.to_numeric(column, errors="coerce")
    if parsed.dtype.kind in "iu":  # exact integers: no float rounding on the way
        values = parsed.to_numpy()
        wrong = np.flatnonzero((values < 0) | (values > _INT64_MAX))
        if wrong.size:
            raise refuse(wrong)
        return values.astype(np.int64)
    values = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    wrong = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values != np.floor(values)) | (values >= 2.0**63))
    if wrong.size:
        raise refuse(wrong)
    return values.astype(np.int64)


def _check_feedback(frame: pd.DataFrame, mapping: ImportMapping, p: Path, where) -> None:
    """Refuse a deterministic logger that takes several actions in one context; warn (``PropensityWarning``) where the
    propensities clearly disagree with how often each action is logged (``logging_data.propensities``)."""
    columns = {c: frame[f"x_{c}"] for c in mapping.context}
    if mapping.position is not None:
        columns[mapping.position] = frame["x_position"]
    for col, kept in ((mapping.prompt, "prompt"), (mapping.domain, "domain")):
        if col is not None:
            columns[col] = frame[kept]
    context = pd.DataFrame(columns) if columns else None
    check = check_propensities(frame["arm"], frame["propensity"], context)
    grouped = (f"contexts: {', '.join(columns)}" if columns else "no --context given: every row one context")
    if check.conflicts:
        c = check.conflicts[0]
        hint = (f"If its choice depends on more than {', '.join(columns)}, name those columns with --context too" if columns
                else "If its choice depends on columns of the file, name them with --context (or --prompt-col)")
        more = f"; {len(check.conflicts) - 1} more context(s) like it" if len(check.conflicts) > 1 else ""
        raise ImportError_(f"{p}: --propensity {mapping.propensity!r} contradicts the logged actions: {c.text()} (first at "
                           f"{where(c.first_row)} and {where(c.other_row)}){more}; a deterministic logger takes one action "
                           f"per context. {hint}")
    for line in check.lines():
        warnings.warn(f"{p}: --propensity {mapping.propensity!r} disagrees with how often the actions are logged: {line} "
                      f"({grouped})", PropensityWarning, stacklevel=3)


def import_decisions(path: str | os.PathLike, out: str | os.PathLike, mapping: ImportMapping, *, fmt: str | None = None,
                     policy_id: str = "logged", arms: Sequence[str] | None = None, description: str | None = None,
                     seed: int = 0, command: str | None = None) -> Log:
    """Write the decisions log ``out`` from ``path`` (see the module docstring); returns it.

    ``out`` must be new (or an empty folder), outside any log and apart from ``path``
    (``outputs.check_output``). The log is written whole beside ``out`` and renamed into place:
    a failed import leaves nothing there."""
    check_output(out, LOG, inputs=[("FILE", path)])
    frame, order = read_decisions(path, mapping, fmt=fmt, policy_id=policy_id, arms=arms, seed=seed)
    desc = description or f"imported from {Path(path).name}: column {mapping.reward!r}"
    context = [c[2:] for c in frame.columns if c.startswith("x_") and c != "x_position"]  # globs expanded, in order
    recorded = {**asdict(mapping), "context": context}
    if tuple(context) != tuple(mapping.context):
        recorded["context_patterns"] = list(mapping.context)
    meta = LogMetadata(arms=tuple(Arm(name=a) for a in order), reward=RewardDefinition(kind="custom", metric="", description=desc),
                       extra={"import": {"file": str(path), "mapping": recorded,
                                         "n_rows": len(frame), "command": command}})
    check_output(out, LOG, inputs=[("FILE", path)])
    with staged(out) as stage:
        log = create_log(stage, meta)
        with log.writer(command or "import_decisions"):
            log.append("decisions", frame)
        publish(stage, out)
    return open_log(out)
