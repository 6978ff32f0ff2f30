"""The shipped Qwen2.5-Coder replay log (examples/data/qwen-coder-log): valid, every arm of the models
file, every count exact in the live definition, priced by the shipped CPU profile; no model needed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "examples" / "data" / "qwen-coder-log"


def test_qwen_log_is_valid_and_matches_its_models_file_and_profile():
    from decoding.pricing import Calibration, load_calibration
    from decoding.models import load_models_config
    from logging_data import open_log
    from logging_data import validate_log

    report = validate_log(LOG)
    assert report.ok, report
    log = open_log(LOG)
    models = load_models_config(ROOT / "examples" / "models" / "qwen-coder.toml")
    assert log.metadata.arm_names == models.arm_names
    cal = Calibration.from_json(log.metadata.extra["calibration"])
    profile = load_calibration(ROOT / "examples" / "profiles" / "cpu-qwen-coder.json")
    assert cal.target_step_s == pytest.approx(profile.target_step_s) and cal.arm_step_s == profile.arm_step_s
    out = log.read("outcomes")
    assert out["query_id"].nunique() * len(models.arms) == len(out)
    assert (out["accepted_tokens"] + out["target_calls"] == out["n_new_tokens"]).all()  # as live decoding counts
    drafting = out[out["arm"].astype(str).str.startswith(("draft", "lookup-draft"))]
    assert (drafting["draft_calls"] > 0).any() and drafting["speedup_count"].notna().all()
    prompts = pd.read_parquet(ROOT / "examples" / "data" / "qwen-prompts.parquet")
    assert set(out["query_id"]) == set(prompts["query_id"]) and len(prompts) == 1000  # every prompt of the file
