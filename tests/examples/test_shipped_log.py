"""The shipped log (examples/data/smollm2-log) is what this project's build makes from the real model.

It was built by ``bandit-log build`` from the real SmolLM2-135M target (its exact command, the
machine and the calibration are in its metadata). Here a slice of it is rebuilt live and must give
the same deterministic counts and the same target outputs (greedy decoding is deterministic;
wall times are not compared).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from logging_data import open_log, validate_log

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "examples" / "data" / "smollm2-log"
MODELS = ROOT / "examples" / "models" / "smollm2.toml"
COUNTS = ["n_new_tokens", "target_calls", "draft_calls", "draft_tokens", "accepted_tokens", "lossless"]


def test_shipped_log_is_valid_and_says_how_it_was_made():
    report = validate_log(LOG)
    assert report.ok, [str(p) for p in report.problems]
    log = open_log(LOG)
    extra = log.metadata.extra
    assert extra["command"].startswith("bandit-log build")
    assert {"hardware", "versions", "calibration", "models_toml"} <= set(extra)
    assert log.metadata.reward.kind == "speedup_count"
    outcomes = pd.read_parquet(LOG / "outcomes")  # plain pandas reads it
    assert set(outcomes["split"]) == {"train", "validation", "test"}
    assert outcomes.groupby("query_id")["arm"].nunique().eq(len(log.metadata.arms)).all()
    assert outcomes["lossless"].all()


@pytest.mark.slow
def test_rebuilding_a_slice_gives_the_same_counts(tmp_path, smollm2):
    from decoding.build import BuildConfig, build_log
    from decoding.models import load_models_config
    log = open_log(LOG)
    shipped = log.read("outcomes")
    prompts = shipped.drop_duplicates("query_id")
    prompts = prompts.assign(n=prompts["prompt"].str.len()).sort_values(["n", "query_id"]).head(2)
    prompts[["query_id", "prompt", "domain", "split"]].to_parquet(tmp_path / "slice.parquet", index=False)
    build = json.loads(json.dumps(log.metadata.extra.get("build", {})))
    build_log(tmp_path / "slice.parquet", load_models_config(MODELS), tmp_path / "rebuilt",
              BuildConfig(reward=log.metadata.reward, max_new_tokens=build.get("max_new_tokens"), calibration_repeats=1),
              threads=1, progress=False)
    rebuilt = open_log(tmp_path / "rebuilt").read("outcomes")
    key = ["query_id", "arm"]
    a = shipped[shipped["query_id"].isin(prompts["query_id"])].set_index(key).sort_index()
    b = rebuilt.set_index(key).sort_index()
    assert list(a.index) == list(b.index)
    pd.testing.assert_frame_equal(a[COUNTS], b[COUNTS], check_dtype=False)
    assert (a["target_output"] == b["target_output"]).all()
