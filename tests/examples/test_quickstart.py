"""examples/quickstart.py end to end at a tiny size: real build, training, OPE, live decoding."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quickstart_tiny(tiny_log, tiny_models_file, tmp_path, capsys):
    qs = _load("quickstart")
    res = qs.main(out=tmp_path / "qs", log=tiny_log, models=tiny_models_file, live_per_domain=1, budget="tiny",
                  learners=("regression", "classifier"), threads=1, progress=False)
    sel = res["selection"]
    names = {c["name"] for c in sel["candidates"]}
    assert {"regression", "classifier", "uniform", "fixed:plain", "fixed:lookup", "fixed:draft"} == names
    assert res["winner"] == sel["chosen"] and sel["method"] == "exact" and sel["reason"]
    chosen = next(c for c in sel["candidates"] if c["name"] == res["winner"])
    best_fixed = next(c for c in sel["candidates"] if c["name"] == sel["best_fixed"])
    assert chosen["value"] >= best_fixed["value"]  # never below the best fixed arm on validation
    assert res["winner"] == sel["best_fixed"] or chosen["diff_low"] > 0
    t = res["test_against_best_arm"]
    assert t["reward"]["diff"]["n"] == t["n_prompts"] and t["count_total"]["oracle"] >= t["count_total"]["value"] - 1e-12
    assert t["count_total"]["diff"]["low"] <= t["count_total"]["diff"]["diff"] <= t["count_total"]["diff"]["high"]
    offline = pd.DataFrame(res["test_offline"])
    overall = offline[offline["domain"] == "(all)"].set_index("policy")
    assert {"oracle", "uniform", "fixed:plain", "fixed:lookup", "fixed:draft"} <= set(overall.index)
    assert overall.loc["fixed:plain", "count"] == pytest.approx(1.0)
    assert overall.loc["oracle", "mean_count"] >= overall["mean_count"].drop("oracle").max() - 1e-12
    live = pd.DataFrame(res["live"]).set_index("domain")
    assert live.loc["(all)", "n_prompts"] == 2 and live.loc["(all)", "identical_to_greedy"] == 1.0
    assert res["live_lossless_failures"] == 0
    assert json.loads((tmp_path / "qs" / "quickstart.json").read_text())["winner"] == res["winner"]
    assert (tmp_path / "qs" / "report" / "report.html").exists()
    assert (tmp_path / "qs" / "speedups.png").stat().st_size > 1000
    qs.print_tables(res)
    assert "Live:" in capsys.readouterr().out


def test_quickstart_without_the_live_step(tiny_log, tiny_models_file, tmp_path, capsys):
    """``--live-per-domain 0`` selects and scores the test split, decodes nothing, and says so."""
    qs = _load("quickstart")
    res = qs.main(out=tmp_path / "qs", log=tiny_log, models=tiny_models_file, live_per_domain=0, budget="tiny",
                  learners=("regression",), threads=1, progress=False)
    assert res["live"] == [] and res["live_lossless_failures"] == 0 and res["winner"]
    assert not (tmp_path / "qs" / "live").exists()
    assert (tmp_path / "qs" / "speedups.png").stat().st_size > 1000
    qs.print_tables(res)
    assert "Live: skipped" in capsys.readouterr().out


def test_quickstart_refuses_an_unknown_size(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        _load("quickstart").main("huge", tmp_path)


def test_bench_tiny(tiny_joint_log, tiny_joint_models_file, tiny_heldout, tmp_path, capsys):
    bench = _load("bench_e2e")
    res = bench.main(tiny_joint_log, tiny_joint_models_file, heldout=tiny_heldout, out=tmp_path / "bench", live_per_domain=1,
                     threads=1, learners=("regression", "classifier"), budget="tiny", progress=False)
    arms = ["plain", "n1k2", "n1k5", "n2k2", "n2k5"]
    assert res["arms"] == arms and set(res["sets"]) == {"test", "heldout"}
    sel = res["selection"]
    assert res["selected"] == sel["chosen"] and sel["method"] == "exact"
    for name, s in res["sets"].items():
        t = pd.DataFrame(s["table"])
        overall = t[t["domain"] == "(all)"].set_index("policy")
        assert {"regression", "classifier", "uniform", "oracle", "domain table", f"selected ({res['selected']})"} | \
            {f"fixed:{a}" for a in arms} == set(overall.index)
        d = s["selected_vs_domain_table"]
        assert d["b"] == pytest.approx(overall.loc["domain table", "count"]) and d["low"] <= d["diff"] <= d["high"]
        assert overall.loc["fixed:plain", "mean_count"] == pytest.approx(1.0) == overall.loc["fixed:plain", "count"]
        assert overall.loc["oracle", "mean_count"] >= overall["mean_count"].max() - 1e-9
        assert overall.loc["oracle", "count"] >= overall["count"].max() - 1e-9
        v = s["selected_vs_best_arm"]
        assert v["count_total"]["best_arm_value"] <= v["count_total"]["oracle"] + 1e-12 and v["reward"]["diff"]["n"] == s["n_prompts"]
        assert overall.loc[f"selected ({res['selected']})", "count"] == pytest.approx(v["count_total"]["value"])
        assert overall.loc[f"selected ({res['selected']})", "reward"] == pytest.approx(v["reward"]["value"])
    assert res["sets"]["heldout"]["n_prompts"] == 4
    from logging_data import open_log

    held = open_log(tmp_path / "bench" / "heldout_log").metadata
    assert held.reward == open_log(tiny_joint_log).metadata.reward  # rewarded and priced as the training log
    assert held.extra["calibration"] == open_log(tiny_joint_log).metadata.extra["calibration"]
    for name, lv in res["live"].items():
        assert lv["identical_to_greedy"] == 1.0
        assert lv["live_counts_equal_replayed"] == 1.0  # live assisted decoding gave exactly the replayed counts
        t = pd.DataFrame(lv["table"])
        assert (t[t["policy"] == "plain"]["wall"] == 1.0).all()
        assert "domain table" in set(t["policy"]) and "domain table" in lv["selected_vs"]
        for d in lv["selected_vs"].values():
            assert d["low"] <= d["diff"] <= d["high"] and d["n_prompts"] == lv["n_prompts"]
        assert {r["arm"] for r in lv["per_arm"]} <= set(arms) and all(r["count_over_wall"] > 0 for r in lv["per_arm"])
    assert set(res["domain_table"]) == {"copy", "free"} and set(res["domain_table"].values()) <= set(arms) and res["peak_rss_gb"] > 0
    assert res["live"]["test"]["n_prompts"] == 2 and res["live"]["heldout"]["n_prompts"] == 4
    assert (tmp_path / "bench" / "bench.png").stat().st_size > 1000
    assert json.loads((tmp_path / "bench" / "bench.json").read_text())["selected"] == res["selected"]
    bench.print_result(res)
    text = capsys.readouterr().out
    assert "Selected on validation" in text and "[heldout, live]" in text


def test_bench_refuses_models_that_do_not_match_the_log(tiny_log, tmp_path):
    from decoding.models import ArmConfig, ModelsConfig, write_models_file

    other = write_models_file(tmp_path / "models.toml", ModelsConfig.of("x", [ArmConfig.of("plain", "none")]))
    with pytest.raises(ValueError, match="has arms plain; log .* has plain, lookup, draft"):
        _load("bench_e2e").main(tiny_log, other, out=tmp_path / "b")
