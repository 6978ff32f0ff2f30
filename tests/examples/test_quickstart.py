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
    assert res["test_against_best_arm"]["diff"]["n"] == res["test_against_best_arm"]["n_prompts"]
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


def test_quickstart_refuses_an_unknown_size(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        _load("quickstart").main("huge", tmp_path)


def test_bench_tiny(tiny_log, tiny_models_file, tmp_path, capsys):
    bench = _load("bench_e2e")
    res = bench.main(tiny_log, tiny_models_file, out=tmp_path / "bench", per_domain=1, warmup=0, threads=1,
                     learners=("regression",), budget="tiny", progress=False)
    t = pd.DataFrame(res["table"])
    overall = t[t["domain"] == "(all)"].set_index("policy")
    assert set(overall.index) == {"regression", "fixed:plain", "fixed:lookup", "fixed:draft", "oracle"}
    assert overall.loc["fixed:plain", "speedup_count"] == pytest.approx(1.0)
    assert overall.loc["oracle", "speedup_count"] >= overall["speedup_count"].max() - 1e-9
    assert res["identical_to_greedy_all_rows"] == 1.0 and res["lossless_failures"] == 0
    assert 0 <= res["max_choose_share"] < 1
    assert set(res["targets"]) == {"speedup_count", "speedup_wall"}
    from logging_data import open_log

    # the count model is priced with the training log's calibration, so the numbers compare with it
    assert res["calibration"] == open_log(tiny_log).metadata.extra["calibration"]
    assert open_log(tmp_path / "bench" / "bench_log").metadata.extra["calibration"] == res["calibration"]
    bench.print_result(res)
    assert "best policy regression" in capsys.readouterr().out


def test_bench_refuses_models_that_do_not_match_the_log(tiny_log, tmp_path):
    other = tmp_path / "models.toml"
    other.write_text('[target]\npath = "x"\n[[arms]]\nname = "plain"\nkind = "none"\n')
    with pytest.raises(ValueError, match="has arms plain; log .* has plain, lookup, draft"):
        _load("bench_e2e").main(tiny_log, other, out=tmp_path / "b")
