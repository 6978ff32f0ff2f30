"""Drafters measured live by the project's builder: a per-arm x domain table of wall and count speed-ups."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd


def live_arm_domain_table(frame: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """Per arm and domain of a measured log's outcomes (with ``count_h200`` priced beside): wall and
    count speed-ups on this machine and under the other profile (ratios of totals,
    ``bandit.suite.speedup_totals``), acceptance, the lossless share and the prompts."""
    from bandit.suite import speedup_totals

    table: dict[str, dict[str, dict[str, float]]] = {}
    for (arm, d), part in frame.groupby([frame["arm"].astype(str), frame["domain"].astype(str)]):
        here = speedup_totals(part)
        there = speedup_totals(part.assign(speedup_count=part["count_h200"], wall_time_s=np.nan))
        table.setdefault(arm, {})[d] = {
            "wall": here["wall"], "count_cpu": here["count"], "count_h200": there["count"],
            "acceptance": float(part["accepted_tokens"].sum() / max(float(part["draft_tokens"].sum()), 1.0)),
            "identical": float(part["lossless"].astype(bool).mean()), "n_prompts": int(len(part))}
    return table


def measure_live(models_path: Path, prompts: pd.DataFrame, out: Path, profile: Any,
                 profile_steps: Callable[[str, str, Any], float], threads: int | None, command: str,
                 for_models: bool = False) -> dict[str, Any]:
    """Measure every arm of ``models_path`` on ``prompts`` with the builder (``out/log-live``: wall
    times, counts, its own calibration of every arm's step, output checked against plain greedy) and
    price the same counts under ``profile`` with each arm's step ``profile_steps(name, kind, own
    calibration)`` seconds (``for_models``: keyed through ``decoding.calibrate.for_arms``)."""
    from logging_data import open_log

    from ..build import BuildConfig, build_log, reward_definition
    from ..pricing import Calibration, for_arms
    from ..models import load_models_config
    from ..reprice import price_counts

    models = load_models_config(models_path)
    path = out / "live-prompts.parquet"
    prompts.to_parquet(path)
    log_path = out / "log-live"
    if log_path.exists():
        shutil.rmtree(log_path)
    cfg = BuildConfig(reward=reward_definition("speedup_wall"), batch_size=4, calibration_repeats=5)
    summary = build_log(path, models, log_path, cfg, threads=threads, progress=False, command=command)
    log = open_log(log_path)
    frame = log.read("outcomes")
    kinds = {a.name: a.kind for a in log.metadata.arms}
    own = Calibration.from_json(log.metadata.extra["calibration"])
    priced = Calibration(**{**profile.to_json(), "arm_step_s": {a: profile_steps(a, k, own) for a, k in kinds.items()}})
    frame["count_h200"] = price_counts(frame, kinds, for_arms(priced, models.arms) if for_models else priced)
    return {"models": str(models_path), "n_prompts": int(len(prompts)), "n_lossless_failures": summary.n_lossless_failures,
            "calibration": log.metadata.extra["calibration"], "per_arm_by_domain": live_arm_domain_table(frame)}


def model_free_or(step_s: float) -> Callable[[str, str, Any], float]:
    """``profile_steps`` for ``measure_live``: model-free arms cost nothing, every other arm ``step_s``."""
    from ..arms import KINDS

    return lambda name, kind, own: 0.0 if KINDS[kind].model_free else step_s


def steps_by_kind(steps: Mapping[str, float | None]) -> Callable[[str, str, Any], float]:
    """``profile_steps`` for ``measure_live``: per kind, a step in seconds, None for the step the
    builder measured here; any other kind costs nothing."""
    return lambda name, kind, own: (own.arm_step_s.get(name, 0.0) if steps[kind] is None else float(steps[kind])) if kind in steps else 0.0
