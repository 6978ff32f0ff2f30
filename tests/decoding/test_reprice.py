"""Re-pricing a log: another reward (time saved) and another machine's step costs, from the counts alone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from logging_data import open_log, validate_log


@pytest.fixture()
def source(tmp_path, tiny_config):
    """A measured tiny log over plain and two prompt-lookup arms, priced with a made-up calibration."""
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.pricing import Calibration
    from decoding.models import ArmConfig

    arms = [ArmConfig.of("plain", "none"), *(ArmConfig.of(f"k{k}", "prompt_lookup", prompt_lookup_num_tokens=k) for k in (2, 5))]
    prompts = tmp_path / "p.parquet"
    pd.DataFrame({"query_id": ["a", "b", "c"], "prompt": ["the cat sat on the mat the cat sat on the", "def add ( a , b ) : return a + b def add (",
                                                          "the lazy dog"], "split": ["train", "validation", "test"]}).to_parquet(prompts)
    cal = Calibration(target_step_s=0.01, arm_step_s={}, verify_token_s=0.001, round_overhead_s=0.004, plain_step_s=0.01)
    out = tmp_path / "src"
    build_log(prompts, tiny_config(arms, max_new_tokens=10), out, BuildConfig(reward=reward_definition("speedup_count")),
              threads=1, progress=False, calibration=cal)
    return out


def test_time_saved_reward_is_one_minus_inverse_speedup(source, tmp_path):
    from decoding.build import reward_definition
    from decoding.reprice import reprice_log

    before = open_log(source).read("outcomes").sort_values(["query_id", "arm"]).reset_index(drop=True)
    reprice_log(source, tmp_path / "saved", reward=reward_definition("time_saved_count"))
    after = open_log(tmp_path / "saved").read("outcomes").sort_values(["query_id", "arm"]).reset_index(drop=True)
    assert validate_log(tmp_path / "saved").ok
    np.testing.assert_allclose(after["reward"], 1 - 1 / before["speedup_count"], rtol=1e-12)
    np.testing.assert_allclose(after["speedup_count"], before["speedup_count"], rtol=1e-12)
    assert (after.loc[after["arm"] == "plain", "reward"] == 0.0).all()
    meta = open_log(tmp_path / "saved").metadata
    assert meta.reward.metric == "time_saved" and meta.extra["reprice"]["from"] == str(source)
    assert meta.extra["command"] == open_log(source).metadata.extra["command"]  # the build record is kept


def test_another_calibration_reprices_the_counts_exactly(source, tmp_path):
    from decoding.pricing import Calibration, speedup_count
    from decoding.reprice import reprice_log

    gpu = Calibration(target_step_s=0.02, arm_step_s={}, verify_token_s=0.0002, round_overhead_s=0.001, plain_step_s=0.02, device="cuda")
    reprice_log(source, tmp_path / "gpu", calibration=gpu)
    rows = open_log(tmp_path / "gpu").read("outcomes")
    for _, r in rows.iterrows():
        expect = speedup_count(r["n_new_tokens"], r["target_calls"], r["draft_calls"], 0.0, r["draft_tokens"], 0.01,
                               0.0 if r["arm"] == "plain" else 0.05)
        assert r["speedup_count"] == pytest.approx(expect) and r["reward"] == pytest.approx(expect)
    assert open_log(tmp_path / "gpu").metadata.extra["calibration"]["device"] == "cuda"
    # wall-clock columns are the measuring machine's: copied unchanged
    src = open_log(source).read("outcomes").set_index(["query_id", "arm"]).sort_index()
    np.testing.assert_allclose(rows.set_index(["query_id", "arm"]).sort_index()["wall_time_s"], src["wall_time_s"])


def test_bad_reprice_requests_fail_and_touch_nothing(source, tmp_path):
    from bandit.cli.main import cli

    before = open_log(source).read("outcomes")
    runner = CliRunner()
    r = runner.invoke(cli, ["reprice", str(source), "--out", str(source)])
    assert r.exit_code == 1 and "already exists" in r.output
    (tmp_path / "bad.json").write_text("{nope")
    r = runner.invoke(cli, ["reprice", str(source), "--out", str(tmp_path / "x"), "--calibration", str(tmp_path / "bad.json")])
    assert r.exit_code == 1 and "not a JSON document" in r.output and not (tmp_path / "x").exists()
    pd.testing.assert_frame_equal(before, open_log(source).read("outcomes"))
    r = runner.invoke(cli, ["reprice", str(source), "--out", str(tmp_path / "ok"), "--reward", "time_saved_count", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["reward"]["metric"] == "time_saved"
    assert "bandit-log reprice LOG --out LOG-saved --reward time_saved_count" in runner.invoke(cli, ["reprice", "--help"]).output


def test_reward_definitions_round_trip():
    from decoding.build import REWARD_CHOICES, reward_definition, reward_name
    from logging_data import RewardDefinition

    for name in REWARD_CHOICES:
        assert reward_name(reward_definition(name)) == name
    with pytest.raises(ValueError, match="scale\\) must be '' \\(the speed-up\\) or 'time_saved'"):
        RewardDefinition(kind="speedup_count", metric="log")


def test_fit_calibration_recovers_known_costs():
    from decoding.pricing import Calibration, fit_calibration

    rng = np.random.default_rng(0)
    n = 200
    calls = rng.integers(10, 48, n)
    drafted = rng.integers(0, 100, n)
    step = 0.05
    wall = (calls * (1 + 0.2) + drafted * 0.1) * step * rng.normal(1, 0.01, n)
    rows = pd.DataFrame({"arm": "lookup", "wall_time_s": wall, "plain_wall_time_s": 48 * step, "n_new_tokens": 48,
                         "target_calls": calls, "draft_tokens": drafted})
    base = Calibration(target_step_s=0.04, arm_step_s={}, verify_token_s=0.0, round_overhead_s=0.1, plain_step_s=step)
    fitted, record = fit_calibration(rows, base, {"lookup": "prompt_lookup"})
    assert record["round_cost"] == pytest.approx(0.2, rel=0.05) and record["verify_cost"] == pytest.approx(0.1, rel=0.05)
    assert fitted.relative_round_cost() == pytest.approx(0.2, rel=0.05)
    assert record["median_rel_error_after"] < 0.02 < record["median_rel_error_before"]
    with pytest.raises(ValueError, match="needs measured prompt-lookup rows"):
        fit_calibration(rows.assign(wall_time_s=np.nan), base, {"lookup": "prompt_lookup"})


def test_the_prefill_is_priced_and_an_older_log_gets_its_prompt_lengths_from_its_targets_tokenizer(source, tmp_path):
    from dataclasses import replace

    from logging_data import create_log
    from decoding.pricing import Calibration
    from decoding.reprice import reprice_log

    cal = Calibration(target_step_s=0.02, arm_step_s={}, verify_token_s=0.0002, round_overhead_s=0.001, plain_step_s=0.02,
                      prefill_token_s=0.001)
    built = open_log(source).read("outcomes")
    assert built["n_prompt_tokens"].ge(1).all()  # the build records what the target read
    reprice_log(source, tmp_path / "direct", calibration=cal)
    direct = open_log(tmp_path / "direct").read("outcomes").sort_values(["query_id", "arm"]).reset_index(drop=True)
    for _, r in direct.iterrows():  # (n + P p) / (calls (1 + r) + drafted v + P p), p = 0.05, r = 0.05, v = 0.01
        p, rr = 0.05 * r["n_prompt_tokens"], (0.0 if r["arm"] == "plain" else 0.05)
        expect = (r["n_new_tokens"] + p) / (r["target_calls"] * (1 + rr) + r["draft_tokens"] * 0.01 + p)
        assert r["speedup_count"] == pytest.approx(expect)
    # a log from before n_prompt_tokens: the same rows without it
    older = tmp_path / "older"
    create_log(older, open_log(source).metadata).append("outcomes", built.drop(columns=["n_prompt_tokens"]))
    assert open_log(older).read("outcomes")["n_prompt_tokens"].isna().all()
    reprice_log(older, tmp_path / "counted", calibration=cal)
    counted = open_log(tmp_path / "counted").read("outcomes").sort_values(["query_id", "arm"]).reset_index(drop=True)
    assert counted["n_prompt_tokens"].tolist() == direct["n_prompt_tokens"].tolist()
    np.testing.assert_allclose(counted["speedup_count"], direct["speedup_count"], rtol=1e-12)
    # without the models file recorded, the prompts cannot be counted: a clear refusal, nothing written
    meta = open_log(source).metadata
    bare = tmp_path / "bare"
    create_log(bare, replace(meta, extra={k: v for k, v in meta.extra.items() if k != "models_toml"})).append(
        "outcomes", built.drop(columns=["n_prompt_tokens"]))
    with pytest.raises(ValueError, match="the log has no n_prompt_tokens and records no models file"):
        reprice_log(bare, tmp_path / "nope", calibration=cal)
    assert not (tmp_path / "nope").exists()
    # a calibration without prefill costs prices an older log as before, without counting anything
    reprice_log(bare, tmp_path / "as-before", calibration=replace(cal, prefill_token_s=0.0))
    assert open_log(tmp_path / "as-before").read("outcomes")["n_prompt_tokens"].isna().all()


def test_count_against_wall_weights_the_count_like_the_clock():
    from decoding.pricing import Calibration
    from decoding.reprice import count_against_wall

    # two prompts of one lookup arm: plain 10 s and 30 s, the arm 5 s and 20 s (wall: 40 / 25 = 1.6)
    frame = pd.DataFrame({
        "arm": ["l", "l", "plain", "plain"], "n_new_tokens": [10, 30, 10, 30], "target_calls": [5, 20, 10, 30],
        "draft_calls": [0, 0, 0, 0], "draft_tokens": [10, 20, 0, 0], "n_prompt_tokens": [100, 100, 100, 100],
        "wall_time_s": [5.0, 20.0, 10.0, 30.0], "plain_wall_time_s": [10.0, 30.0, 10.0, 30.0], "lossless": [True] * 4})
    free = Calibration(target_step_s=1.0)  # counts only: speed-ups 2.0 and 1.5
    with_prefill = Calibration(target_step_s=1.0, prefill_token_s=0.1)  # (10 + 10) / (5 + 10) and (30 + 10) / (20 + 10)
    table = count_against_wall(frame, {"l": "prompt_lookup", "plain": "none"}, {"free": free, "prefill": with_prefill})
    lookup = table.set_index("arm").loc["l"]
    assert lookup["wall"] == pytest.approx(40 / 25) and lookup["n_prompts"] == 2 and lookup["lossless"]
    assert lookup["count free"] == pytest.approx(40 / (10 / 2.0 + 30 / 1.5))
    assert lookup["count prefill"] == pytest.approx(40 / (10 / (20 / 15) + 30 / (40 / 30)))
    assert lookup["count/wall free"] == pytest.approx(lookup["count free"] / lookup["wall"])
    assert table.set_index("arm").loc["plain", "count/wall prefill"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs measured rows"):
        count_against_wall(frame.assign(wall_time_s=None), {"l": "prompt_lookup", "plain": "none"}, {"free": free})
