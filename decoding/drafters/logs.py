"""A priced full-information log: a source log's rows and a drafter's replayed ones, priced by one calibration."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

QCOLS = ["query_id", "prompt", "domain", "split"]
COUNT_COLS = ["n_new_tokens", "target_calls", "draft_calls", "draft_tokens", "accepted_tokens"]
#: the prompt's tokens (what a calibration with prefill costs prices), kept where the source log has them
PROMPT_TOKENS = "n_prompt_tokens"


def query_columns(frame: pd.DataFrame) -> list[str]:
    """The query-level columns of a source log's rows a drafter's replayed rows take over: ``QCOLS``, and
    ``n_prompt_tokens`` where ``frame`` has it."""
    return QCOLS + ([PROMPT_TOKENS] if PROMPT_TOKENS in frame.columns else [])


def write_priced_log(path: Path, base: pd.DataFrame, replayed: pd.DataFrame, arms: Sequence[Any], calibration: Any,
                     priced_by: str, extra: dict[str, Any]) -> pd.DataFrame:
    """Write ``path`` (replaced whole): ``base``'s rows (a source log's outcomes) and ``replayed``
    (one row per prompt and drafter arm: ``QCOLS`` + ``arm`` + the counts; ``n_prompt_tokens`` kept where
    both have it), every row's
    ``speedup_count`` priced by ``calibration`` (``decoding.reprice.price_counts``) and taken as the
    reward; ``arms``: every arm, with its cost. Returns the rows written."""
    from logging_data import Arm, LogMetadata, RewardDefinition, create_log

    from ..reprice import price_counts

    cols = QCOLS + ["arm"] + COUNT_COLS + ([PROMPT_TOKENS] if PROMPT_TOKENS in base.columns and PROMPT_TOKENS in replayed.columns else [])
    frame = pd.concat([base[cols], replayed[cols]], ignore_index=True)
    frame["speedup_count"] = price_counts(frame, {a.name: a.kind for a in arms}, calibration)
    frame["reward"] = frame["speedup_count"]
    frame["arm_cost"] = frame["arm"].map({a.name: a.cost for a in arms}).astype(float)
    reward = RewardDefinition(kind="speedup_count", metric="", description="count speed-up of the project's loop", priced_by=priced_by)
    meta = LogMetadata(arms=tuple(Arm(a.name, a.kind, a.cost, a.attrs) for a in arms), reward=reward,
                       extra={"calibration": calibration.to_json(), **extra})
    if path.exists():
        shutil.rmtree(path)
    create_log(path, meta).append("outcomes", frame)
    return frame


def _first(frame: pd.DataFrame) -> str:
    return f"first: query_id={frame['query_id'].iloc[0]}"


def check_source_log(path: Path, models_arms: Sequence[str], need_calibration: bool = True) -> pd.DataFrame:
    """A drafter's source log, checked before any model loads: a full-information log (``outcomes``) with
    a ``plain`` arm whose rows carry ``target_output``, exact counts on every row, train prompts in every
    domain and validation prompts, every arm in ``models_arms`` (its models file), a calibration when
    ``need_calibration``. Returns its outcomes; a ``ValueError`` names the log, what was expected and found."""
    from logging_data import open_log

    log = open_log(path)
    arms = log.metadata.arm_names
    if "plain" not in arms:
        raise ValueError(f"LOG {path}: a full-information log with a 'plain' arm expected (the target's own greedy decoding); "
                         f"its arms are {', '.join(arms)}")
    missing = [a for a in arms if a not in models_arms]
    if missing:
        raise ValueError(f"--models: no arm {missing[0]!r} of LOG {path} (the models file has {', '.join(models_arms)}); "
                         f"give the models file the log was built from")
    if not log.has("outcomes"):
        raise ValueError(f"LOG {path}: outcome rows expected (a full-information log); it has none")
    outcomes = log.read("outcomes")
    plain = outcomes[outcomes["arm"].astype(str) == "plain"]
    empty = plain[plain["target_output"].isna()] if "target_output" in plain.columns else plain
    if len(empty) or not len(plain):
        raise ValueError(f"LOG {path}: target_output expected on every plain row (what `bandit-log build` writes); "
                         f"{len(empty)} of {len(plain)} have none" + (f" ({_first(empty)})" if len(empty) else ""))
    uncounted = outcomes[outcomes[COUNT_COLS].isna().any(axis=1)]
    if len(uncounted):
        arm = str(uncounted["arm"].iloc[0])
        raise ValueError(f"LOG {path}: exact counts ({', '.join(COUNT_COLS)}) expected on every row; arm {arm!r} has "
                         f"{int((uncounted['arm'].astype(str) == arm).sum())} rows without them ({_first(uncounted)}; an "
                         f"--alignment-only log of model drafts has none)")
    splits = plain["split"].astype(str)
    for domain, part in plain.groupby(plain["domain"].astype(str)):
        if not (part["split"].astype(str) == "train").any():
            raise ValueError(f"LOG {path}: every domain needs train prompts (a drafter per domain trains on them); domain "
                             f"{domain!r} has none (its splits: {', '.join(sorted(part['split'].astype(str).unique()))})")
    if not (splits == "validation").any():
        raise ValueError(f"LOG {path}: validation prompts expected (the drafters' settings are picked on them); its splits are "
                         f"{', '.join(sorted(splits.unique()))}")
    if need_calibration and not log.metadata.extra.get("calibration"):
        raise ValueError(f"LOG {path}: records no calibration to price the counts with; give --calibration PROFILE.json")
    return outcomes
