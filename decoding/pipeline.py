"""Train -> select on validation -> test -> decode live: the pipeline the quickstart and every drafter run call.

``select_and_test(log, out, models)``: the offline half (``bandit.pipeline.offline_half``: every
policy trained on the log's train split, the project's selection rule on validation (exact values,
paired intervals against the best fixed arm), an off-policy report, the test split scored for every
policy, single arm and the oracle), then the same counts priced under another machine's cost
profile, and the chosen policy decoding held-out prompts live (plain decoding timed beside it).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from bandit.pipeline import FEATURIZER


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def priced_on(outcomes: pd.DataFrame, arms: Sequence[Any], profile: Path, say: Callable[[str], None] = _stderr) -> pd.DataFrame | None:
    """``outcomes`` with ``speedup_count`` re-priced under another machine's cost profile (the counts
    are the same there under exact greedy decoding); None, said, where the profile cannot price an
    arm (a drafting model it has no step cost for)."""
    from .pricing import for_arms, load_calibration
    from .reprice import price_counts

    try:
        cal = for_arms(load_calibration(profile), arms)
    except (OSError, ValueError) as exc:
        say(f"   no {Path(profile).name} column: {exc}")
        return None
    frame = outcomes.copy()
    frame["speedup_count"] = price_counts(frame, {a.name: a.kind for a in arms}, cal)
    frame["wall_time_s"] = np.nan  # wall clock belongs to the machine that measured it
    return frame


def run_live(run_dir: Path, winner: str, outcomes: pd.DataFrame, live_per_domain: int, models_path: Path, out: Path,
             opened: Any, seed: int, threads: int | None, progress: bool,
             say: Callable[[str], None] = _stderr) -> tuple[pd.DataFrame, int]:
    """Decode ``live_per_domain`` held-out prompts per domain with the chosen policy, plain decoding
    timed beside it: the per-domain live table (``bandit.pipeline.live_table``) and the lossless failures."""
    from bandit.pipeline import held_out_slice, live_table
    from logging_data import open_log

    from .pricing import Calibration
    from .loop import DecodeConfig, decode_prompts
    from .models import load_models_config

    say(f"4/4 live: decoding {live_per_domain} held-out prompt(s) per domain with {winner} (plain decoding timed beside)")
    live_prompts = held_out_slice(outcomes, live_per_domain)
    prompts_file = out / "live_prompts.parquet"
    live_prompts.to_parquet(prompts_file, index=False)
    live_log = out / "live"
    if live_log.exists():
        shutil.rmtree(live_log)
    recorded = opened.metadata.extra.get("calibration")  # price the count model as the log did
    summary = decode_prompts(run_dir, load_models_config(models_path), prompts_file, live_log,
                             DecodeConfig(greedy=True, seed=seed, reward=opened.metadata.reward), threads=threads,
                             progress=progress, calibration=Calibration.from_json(recorded) if recorded else None)
    return live_table(open_log(live_log).read("decisions")), summary.n_lossless_failures


def select_and_test(log: str | Path, out: str | Path, models: str | Path, *, live_per_domain: int = 4, budget: str = "default",
                    learners: Sequence[str] | None = None, featurizer: str = FEATURIZER, seed: int = 0,
                    threads: int | None = None, progress: bool = True, h200_profile: str | Path | None = None,
                    say: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Train every policy on ``log``'s train split, select on validation, score on test (``bandit.pipeline.offline_half``), decode live.

    ``models``: a models file naming every arm of the log (the live step decodes with it);
    ``h200_profile``: a cost profile the test split is priced under too (None: not priced). Returns
    every number (the caller writes it); ``offline``, ``live`` and ``winner`` for a figure.
    """
    from bandit.pipeline import offline_half, offline_table, split_rows
    from logging_data import open_log

    out, log = Path(out), Path(log)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    opened = open_log(log)
    arm_names = opened.metadata.arm_names
    half = offline_half(log, out, learners=learners, budget=budget, featurizer=featurizer, seed=seed, progress=progress, say=say)
    winner, outcomes = half.winner, half.outcomes
    test_outcomes = split_rows(outcomes, "test")
    on_h200 = priced_on(test_outcomes, opened.metadata.arms, Path(h200_profile), say) if h200_profile is not None else None
    offline_h200 = offline_table(half.runs, on_h200, arm_names) if on_h200 is not None else None

    if live_per_domain > 0:
        live, n_failures = run_live(half.trained.runs[winner], winner, outcomes, live_per_domain, Path(models), out, opened,
                                    seed, threads, progress, say)
    else:
        say("4/4 live: skipped (--live-per-domain 0)")
        live, n_failures = pd.DataFrame(), 0
    return {
        "log": str(log), "arms": list(arm_names), "reward": opened.metadata.reward.to_json(), "winner": winner,
        "featurizer": featurizer, "selection": {"split": "validation", **half.selection.to_json()},
        "off_policy_validation": [r for r in half.evaluation.rows() if r["estimator"] == "dr"],
        "test_offline": half.offline.to_dict(orient="records"),
        "test_against_best_arm": half.test_check,
        "h200_profile": str(h200_profile) if offline_h200 is not None else None,
        "test_offline_h200": offline_h200.to_dict(orient="records") if offline_h200 is not None else [],
        "live": live.to_dict(orient="records"),
        "live_lossless_failures": n_failures,
        "seconds": {"train": half.train_seconds, "total": time.perf_counter() - t0},
        "report": str(half.report),
    }


def selection_summary(log: Path, out: Path, models: Path, *, live_per_domain: int, seed: int, threads: int | None,
                      budget: str, learners: Sequence[str] | None) -> dict[str, Any]:
    """``select_and_test`` on a drafter run's priced log, quietly (its Python warnings kept in
    ``out/warnings.txt``, every number in ``out/selection.json``), summed up: the winner and why, the test split against the best arm, each
    arm's test speed-up per domain, every policy's overall test speed-up, the live run."""
    from bandit.pipeline import arm_domain_speedups
    from logging_data import open_log

    with warnings.catch_warnings(record=True) as caught:  # kept in a file, counted here
        warnings.simplefilter("always")
        q = select_and_test(log, out, models, live_per_domain=live_per_domain, seed=seed, threads=threads, progress=False,
                            budget=budget, learners=learners)
    if caught:
        (out / "warnings.txt").write_text("\n".join(sorted({f"{w.category.__name__}: {w.message}" for w in caught})) + "\n")
    (out / "selection.json").write_text(json.dumps(q, indent=2, default=str) + "\n")
    test = pd.DataFrame(q["test_offline"])
    return {"winner": q["winner"], "selection_reason": q["selection"]["reason"], "test_against_best_arm": q["test_against_best_arm"],
            "per_arm_by_domain": arm_domain_speedups(open_log(log).read("outcomes")),
            "test_overall": test[test["domain"] == "(all)"].set_index("policy")["count"].to_dict(),
            "live": q["live"], "live_lossless_failures": q["live_lossless_failures"]}
