"""examples/heads.py at a tiny size: per-domain heads on the real SmolLM2-135M, replayed counts checked live,
two pricings, the selection on each."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from decoding.drafters.models_file import GATED
from decoding.drafters.states import cached_greedy_outputs, cached_teacher_outputs, plain_rows
from decoding.drafters.tuning import MIN_ACCEPTANCE, TUNE_GATES, TUNE_LENGTHS, HeadSetting
from logging_data import open_log

JOINT_LOG = Path(__file__).resolve().parents[2] / "examples" / "data" / "smollm2-joint-log"

pytestmark = [pytest.mark.slow, pytest.mark.benchmark]  # a benchmark command (BENCHMARKS.md), not in the README's test command


def test_heads_example_runs_end_to_end(heads_run, load_example):
    out, res = heads_run  # ex.main at a tiny size (tests/examples/conftest.py)
    assert res["n_prompts"] == 12 and res["domains"] == ["code", "questions", "summarize", "translate"]
    # one training prompt per domain mined beyond the log's one (none of the log's prompts), with its teacher continuation
    mined = res["mined_train_prompts"]
    assert mined["counts"] == {d: 1 for d in res["domains"]} and mined["request"]["need"] == {d: 1 for d in res["domains"]}
    extra = pd.read_parquet(out / "extra-prompts.parquet")
    log_prompts = set(open_log(JOINT_LOG).read("outcomes")["prompt"].astype(str))
    assert len(extra) == 4 and not set(extra["prompt"]) & log_prompts
    assert all(c[-1]["train_prompts"] == 2 and c[-1]["mined_prompts"] == 1
               for c in res["learning_curve"].values())
    kept = cached_teacher_outputs(None, extra, out / "extra-states")  # read back: no model needed
    assert len(kept[0]) == 4 and all(len(s) == len(p) + len(o) for p, o, s in zip(*kept[:3]))
    assert all(c["lossless"] and c["same_counts"] for c in res["live_check"])  # replay == the live loop
    for d, points in res["learning_curve"].items():
        assert [p["train_prompts"] for p in points] == sorted(p["train_prompts"] for p in points)
        assert all(0.0 <= p[f"acceptance{g}"] <= 1.0 and p[f"tokens_per_call{g}"] >= 1.0 for p in points for g in ("", "_gated"))
    for pricing in ("cpu", "h200"):
        r = res[pricing]
        # the selected policy decoded live with the router's models file (every arm of the log)
        assert r["live_lossless_failures"] == 0 and r["live"] and all(row["identical_to_greedy"] == 1.0 for row in r["live"])
        assert r["winner"] and set(r["per_arm_by_domain"]) >= {"plain", "head-code-k3", "head-translate-k5", "head-code-k5-gated",
                                                               "head-summarize-tuned", "lookup-head-code", "lookup-head-questions-gated"}
    # each head's tuned arm: a setting of the grid, picked on validation, logged with it
    for d, t in res["tuned"].items():
        s = HeadSetting.parse(t["setting"])
        assert s.k in TUNE_LENGTHS and s.gate in TUNE_GATES and set(t["validation"]) == {
            HeadSetting(kk, g).name for kk in TUNE_LENGTHS for g in TUNE_GATES}
        assert t["reached_min_acceptance"] == (t["validation"][t["setting"]]["acceptance"] >= MIN_ACCEPTANCE)
    from logging_data import validate_log

    for pricing in ("cpu", "h200"):
        assert validate_log(out / f"log-{pricing}").ok
    h200 = open_log(out / "log-h200").metadata
    assert "h200-smollm2-135m-fp32.json" in h200.reward.priced_by and "assumed" in h200.reward.priced_by
    assert (out / "heads" / "code" / "head.safetensors").exists()
    assert json.loads((out / "heads.json").read_text())["n_prompts"] == 12
    live = res["live"]  # the heads as kind = "head" arms of a models file, measured by the builder
    assert live["n_prompts"] == 4 and live["n_lossless_failures"] == 0
    assert set(live["per_arm_by_domain"]) == ({"plain", "lookup-n3-k10"} | {f"head-{d}-{s}" for d in res["domains"] for s in ("k3", "tuned")}
                                              | {f"lookup-head-{d}{g}" for d in res["domains"] for g in ("", "-gated")})
    assert all(v["identical"] == 1.0 and v["wall"] > 0 for arm in live["per_arm_by_domain"].values() for v in arm.values())
    assert validate_log(out / "log-live").ok
    live_arms = open_log(out / "log-live").metadata.arms
    assert [a.kind for a in live_arms][-2:] == ["lookup_head"] * 2 and live_arms[-1].attrs["confidence"] == GATED.gate
    # the greedy outputs and states are kept: a second call reads them back and gives the same rows
    again = cached_greedy_outputs(None, plain_rows(open_log(JOINT_LOG).read("outcomes"), 12), out / "states")
    assert again[4] == res["regenerated"] and len(again[0]) == 12
    # each head over k x gate, picked on validation, reported on test (examples/heads_gate_sweep.py)
    sweep = load_example("heads_gate_sweep").main(out, min_acceptance=0.0)
    assert sorted(sweep) == res["domains"]
    for d, x in sweep.items():
        assert len(x["settings"]) == 15 and x["picked_on_validation"] in x["settings"]
        assert all(0.0 <= v[s]["acceptance"] <= 1.0 and v[s]["count"] > 0 for v in x["settings"].values() for s in ("validation", "test"))
    # the head variants against the project's head, on validation (examples/heads_variants.py)
    var = load_example("heads_variants").main(out, "translate", epochs=1, max_prompts=3)
    assert set(var["variants"]) == {"base", "rollout", "layers", "attention"}
    for v in var["variants"].values():
        assert 0.0 <= v["first_token_accuracy"] <= 1.0 and len(v["settings"]) == 15 and v["fastest"] in v["settings"]
    assert (out / "variants-translate.json").exists()
