"""The shipped 13-arm replay log (examples/data/smollm2-joint-log): valid, says how it was made, and
its replayed counts are what real assisted decoding on the real SmolLM2-135M measures, arm by arm."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from logging_data import open_log, validate_log

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "examples" / "data" / "smollm2-joint-log"
MODELS = ROOT / "examples" / "models" / "smollm2-joint.toml"
REFERENCE = ROOT / "examples" / "data" / "smollm2-cal-log"
PROMPTS = ROOT / "examples" / "data" / "prompts-large.parquet"
COUNTS = ["n_new_tokens", "target_calls", "draft_tokens", "accepted_tokens"]


def test_joint_log_is_valid_complete_and_says_how_it_was_made():
    report = validate_log(LOG)
    assert report.ok, [str(p) for p in report.problems][:5]
    log = open_log(LOG)
    extra = log.metadata.extra
    assert extra["command"].startswith("bandit-log build") and "--alignment-only" in extra["command"]
    assert extra["build"]["measure"] is False and log.metadata.reward.kind == "speedup_count"
    assert log.metadata.reward.metric == "time_saved" and extra["reprice"]["command"].startswith("bandit-log reprice")
    assert extra["reprice"]["previous"]["command"].startswith("bandit-log reprice")
    ref = open_log(REFERENCE).metadata.extra["calibration"]
    # priced with the calibration log's costs (measured with the oneDNN kernels the decoding uses by
    # default), its round and verified-token costs fitted to its wall times
    assert extra["calibration"]["plain_step_s"] == ref["plain_step_s"]
    assert extra["reprice"]["calibration_source"]["path"] == "fit:examples/data/smollm2-cal-log"
    assert open_log(REFERENCE).metadata.extra["build"]["linear"] == "onednn"
    from decoding.pricing import load_calibration

    assert extra["calibration"]["round_overhead_s"] == pytest.approx(load_calibration("fit:" + str(REFERENCE)).round_overhead_s)
    outcomes = pd.read_parquet(LOG / "outcomes")
    prompts = pd.read_parquet(PROMPTS)
    assert set(outcomes["query_id"]) == set(prompts["query_id"])
    assert outcomes.groupby("query_id")["arm"].nunique().eq(13).all()
    assert log.metadata.arm_names == ("plain",) + tuple(f"lookup-n{n}-k{k}" for n in (1, 2, 3) for k in (2, 3, 5, 10))
    plain = outcomes[outcomes["arm"] == "plain"]
    assert (plain["reward"] == 0.0).all() and (plain["speedup_count"] == 1.0).all()
    assert (plain["target_calls"] == plain["n_new_tokens"]).all()
    assert ((outcomes["reward"] - (1 - 1 / outcomes["speedup_count"])).abs() < 1e-12).all()
    assert outcomes["wall_time_s"].isna().all()  # nothing timed: counts only


@pytest.mark.slow
def test_replayed_counts_equal_live_assisted_decoding_for_every_joint_arm(smollm2):
    from decoding.build import measure_pairs
    from decoding.pricing import load_calibration
    from decoding.session import DecodingSession
    from decoding.models import load_models_config
    log = open_log(LOG)
    outcomes = log.read("outcomes")
    # two short prompts on which prompt lookup proposes something (code and summarize copy from their input)
    active = outcomes[(outcomes["arm"] == "lookup-n2-k5") & (outcomes["accepted_tokens"] > 3)]
    picks = (active.assign(n=active["prompt"].str.len()).sort_values(["n", "query_id"])
             .groupby("domain", observed=True).head(1).head(2))
    frame = picks[["query_id", "prompt", "domain"]].reset_index(drop=True)
    arms = log.metadata.arm_names
    session = DecodingSession(load_models_config(MODELS), threads=1)
    measured = measure_pairs(session, frame, {q: arms for q in frame["query_id"]},
                             load_calibration(LOG), warm_arms=False)  # counts only: no untimed warm-up runs
    assert measured["lossless"].all()
    a = outcomes.set_index(["query_id", "arm"]).loc[list(zip(measured["query_id"], measured["arm"]))][COUNTS + ["speedup_count"]]
    b = measured.set_index(["query_id", "arm"])[COUNTS + ["speedup_count"]]
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
