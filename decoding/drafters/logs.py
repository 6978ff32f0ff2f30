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
