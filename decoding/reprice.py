"""Re-price a log's outcomes: another reward definition and/or another machine's step costs.

Under exact greedy decoding the counts of an outcome (target calls, drafted and accepted tokens,
draft calls) do not depend on the machine; only their prices do (``decoding.pricing``). So a
log built once can be priced under another calibration (a cost profile of another machine, e.g.
a GPU's) and scored under another reward (``speedup_count`` or ``time_saved_count``, or an
alignment reward with the new ``arm_cost``) without decoding anything again.

``reprice_log(src, out, reward=..., calibration=...)`` writes a *new* log at ``out`` (never in
place): the source's outcomes with ``arm_cost``, ``speedup_count`` (recomputed from the counts
when a calibration is given) and ``reward`` rewritten; the metadata keeps the source's build
record and adds ``extra.reprice`` (source, command, what changed). Measured wall-clock columns
are copied as they are (they belong to the machine that measured them); a ``*_wall`` reward
keeps using them. The decisions table is not carried over (its rewards were observed by a
deployed policy; re-pricing them would change what was logged).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from logging_data import LogMetadata, RewardDefinition, create_log, open_log, require_valid_log
from logging_data.outputs import LOG, check_output, publish, staged
from logging_data.schema import Arm

from .build import reward_value
from .pricing import PRICED_KINDS, Calibration, for_arms, speedup_count

COUNT_COLUMNS = ("n_new_tokens", "target_calls", "draft_calls", "draft_tokens")


@dataclass(frozen=True)
class RepriceSummary:
    out: str
    n_rows: int
    reward: dict
    calibration: dict
    seconds: float


def price_counts(frame: Any, kinds: dict[str, str], calibration: Calibration) -> list[float]:
    """The count speed-up of each outcome row of ``frame`` (its counts, and its prompt's
    ``n_prompt_tokens`` where the frame has them) under ``calibration``'s step costs
    (``Calibration.speedup``); ``kinds``: arm name -> kind (plain decoding pays no round). The one
    place a log's counts are priced after the fact (``reprice_log``, the examples' "on an H200" columns)."""
    import pandas as pd

    from .arms import is_plain

    prompts = frame["n_prompt_tokens"] if "n_prompt_tokens" in frame.columns else [None] * len(frame)
    return [calibration.speedup(a, is_plain(kinds[a]), int(n), int(t), int(d), int(dt), None if pd.isna(p) else int(p))
            for n, t, d, dt, a, p in zip(frame["n_new_tokens"], frame["target_calls"], frame["draft_calls"],
                                         frame["draft_tokens"], frame["arm"].astype(str), prompts)]


def prompt_token_counts(meta: Any, prompts: Any, src: Any) -> list[int]:
    """Tokens of each prompt as the log's target reads it (its models file's tokenizer and chat
    template setting, from the log's build record): what a log built before ``n_prompt_tokens``
    existed needs for its prefill to be priced. Loads the tokenizer only."""
    from .loading import ModelLoadError, load_tokenizer, prompt_ids
    from .models import parse_models_config

    text = meta.extra.get("models_toml")
    if not text:
        raise ValueError(f"{src}: the calibration prices the prefill, but the log has no n_prompt_tokens and records no "
                         f"models file to count its prompts' tokens with; reprice with a calibration without prefill costs")
    config = parse_models_config(text, base_dir=Path(str(meta.extra.get("models_file") or ".")).parent, source=f"{src} (recorded models file)")
    try:
        tokenizer = load_tokenizer(config.resolve(config.target.path))
    except ModelLoadError as exc:
        raise ValueError(f"{src}: the calibration prices the prefill, but the log has no n_prompt_tokens and its target's "
                         f"tokenizer cannot be loaded to count them ({exc})") from None
    chat = bool(getattr(tokenizer, "chat_template", None)) if config.target.chat_template == "auto" else bool(config.target.chat_template)
    counts: dict[str, int] = {}
    return [counts.setdefault(str(p), len(prompt_ids(tokenizer, str(p), chat))) for p in prompts]


def reprice_log(src: str | os.PathLike, out: str | os.PathLike, *, reward: RewardDefinition | None = None,
                calibration: Calibration | None = None, command: str | None = None,
                calibration_source: Any = None, priced_by: str | None = None) -> RepriceSummary:
    """Write ``out``: ``src``'s outcomes under ``reward`` (default: the source's) priced with
    ``calibration`` (default: the source's). See the module docstring. ``priced_by``: what the new
    reward records as the costs' origin (``decoding.pricing.calibration_source_label``; default: the
    source's when its costs are kept, else a generic line naming the calibration's device)."""
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    check_output(out, LOG, inputs=[("LOG", src)])  # a new log, apart from the source and outside every log
    log = open_log(src)
    require_valid_log(src)  # never re-price rows that break the contract
    if not log.has("outcomes") or log.n_rows("outcomes") == 0:
        raise ValueError(f"{src}: the log has no outcomes to re-price")
    meta = log.metadata
    reward = reward or meta.reward
    if reward.kind == "custom":
        raise ValueError(f"{src}: reward kind 'custom' cannot be computed from a log's columns; choose an alignment, speed-up or "
                         f"time-saved reward (--reward)")
    recorded = meta.extra.get("calibration")
    if calibration is None and recorded is None:
        raise ValueError(f"{src}: the log records no calibration; give one (--calibration)")
    cal = for_arms(calibration if calibration is not None else Calibration.from_json(recorded), meta.arms)
    costs = cal.relative_costs()
    kinds = {a.name: a.kind for a in meta.arms}
    arms_by_name = {a.name: a for a in meta.arms}
    frame = log.read("outcomes")
    if calibration is not None or reward.kind == "speedup_count":
        needed = list(COUNT_COLUMNS)
        missing = frame[needed].isna().any(axis=1).to_numpy()
        if missing.any():
            first = frame.iloc[int(np.flatnonzero(missing)[0])]
            raise ValueError(f"{src}: {int(missing.sum())} outcome row(s) have no counts ({', '.join(needed)}), so their "
                             f"count speed-up cannot be priced (first: query_id={first['query_id']}, arm={first['arm']}); "
                             f"drafting arms of an alignment-only log have none")
    frame = frame.copy()
    frame["arm_cost"] = frame["arm"].astype(str).map(costs).astype(float)
    if calibration is not None:
        unknown = frame["n_prompt_tokens"].isna().to_numpy()
        if cal.prefill_token_s > 0 and unknown.any():  # a log from before n_prompt_tokens: count them once, keep them
            counted = prompt_token_counts(meta, frame.loc[unknown, "prompt"], src)
            frame["n_prompt_tokens"] = frame["n_prompt_tokens"].astype("Int64")
            frame.loc[unknown, "n_prompt_tokens"] = counted
        frame["speedup_count"] = price_counts(frame, kinds, cal)
    rows = frame.to_dict(orient="records")
    try:
        frame["reward"] = [reward_value(reward, arms_by_name[str(row["arm"])], row) for row in rows]
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{src}: reward {reward.to_json()} cannot be computed from the log's columns ({exc})") from None
    if reward.kind not in PRICED_KINDS:
        label = ""
    elif calibration is not None:
        label = priced_by or f"step costs given to reprice (measured on {cal.device})"
    else:
        label = meta.reward.priced_by
    reward = replace(reward, priced_by=label)
    arms = tuple(Arm(name=a.name, kind=a.kind, cost=float(costs.get(a.name, 0.0)), attrs=a.attrs) for a in meta.arms)
    extra = dict(meta.extra)
    extra["calibration"] = cal.to_json()
    extra["reprice"] = {"from": str(src), "command": command, "reward_from": meta.reward.to_json(),
                        "calibration_changed": calibration is not None, "calibration_source": calibration_source,
                        "note": "outcomes re-priced from their counts; measured wall-clock columns copied unchanged"}
    if "reprice" in meta.extra:  # keep the history of earlier re-pricings
        extra["reprice"]["previous"] = meta.extra["reprice"]
    check_output(out, LOG, inputs=[("LOG", src)])
    with staged(out) as stage:  # written whole beside out, then renamed: a failure leaves nothing at out
        create_log(stage, LogMetadata(arms=arms, reward=reward, extra=extra)).append("outcomes", frame)
        publish(stage, out)
    return RepriceSummary(str(out), len(frame), reward.to_json(), cal.to_json(), time.perf_counter() - t0)


def count_against_wall(frame: Any, kinds: dict[str, str], calibrations: dict[str, Calibration]) -> Any:
    """Per arm of a *measured* outcomes ``frame`` (wall times and counts): the measured wall-clock
    speed-up and each calibration's count speed-up, both as ratios of totals over the same prompts,
    and the count over the wall (1.0: the count model prices that arm as the clock does).

    The count side is weighted like the wall side: each prompt's plain wall time over its count
    speed-up is what the count model says the arm takes on it, so ``count = sum(plain) / sum(plain /
    speedup_count)``. ``calibrations``: label -> costs (e.g. the log's own, and the same without
    the prefill). Rows without wall times are left out; a DataFrame, one row per arm.
    """
    import pandas as pd

    cols = ["wall_time_s", "plain_wall_time_s", *COUNT_COLUMNS]
    rows = frame.dropna(subset=cols)
    rows = rows[rows["wall_time_s"] > 0]
    if rows.empty:
        raise ValueError("count_against_wall needs measured rows (wall times and counts); the frame has none")
    plain = rows["plain_wall_time_s"].to_numpy(float)
    priced = {label: np.asarray(price_counts(rows, kinds, cal), dtype=float) for label, cal in calibrations.items()}
    out = []
    for arm in dict.fromkeys(rows["arm"].astype(str)):
        mask = (rows["arm"].astype(str) == arm).to_numpy()
        record: dict[str, Any] = {"arm": arm, "n_prompts": int(mask.sum()),
                                  "wall": float(plain[mask].sum() / rows["wall_time_s"].to_numpy(float)[mask].sum())}
        for label, speedups in priced.items():
            count = float(plain[mask].sum() / (plain[mask] / speedups[mask]).sum())
            record[f"count {label}"] = count
            record[f"count/wall {label}"] = count / record["wall"]
        if "lossless" in rows:
            record["lossless"] = bool(rows.loc[mask, "lossless"].fillna(False).astype(bool).all())
        out.append(record)
    return pd.DataFrame(out)
