"""Cost profiles: `bandit-log calibrate --out` writes one, builds and re-pricings record which one priced them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from decoding.models import ArmConfig
from logging_data import RewardDefinition, open_log

REPO = Path(__file__).resolve().parents[2]
H200 = REPO / "examples" / "profiles" / "h200-smollm2-135m-fp32.json"
ARMS = (ArmConfig.of("plain", "none"), ArmConfig.of("k3", "prompt_lookup", prompt_lookup_num_tokens=3),
        ArmConfig.of("exit1", "early_exit", assistant_early_exit=1, num_assistant_tokens=3))


@pytest.fixture(scope="module")
def profile(tmp_path_factory, write_tiny_models):
    """A cost profile of the tiny models, written by the command a user runs."""
    root = tmp_path_factory.mktemp("profile")
    write_tiny_models(root / "models.toml", ARMS, max_new_tokens=8)
    r = CliRunner().invoke(cli, ["calibrate", "--models", str(root / "models.toml"), "--out", str(root / "here.json"),
                                 "--threads", "1", "--repeats", "1", "--json"])
    assert r.exit_code == 0, r.output
    return root


def test_calibrate_writes_a_profile_that_prices_logs(profile):
    from decoding.pricing import Calibration, load_calibration

    record = json.loads((profile / "here.json").read_text())
    assert set(record) >= {"what", "calibration", "hardware", "versions", "created_at", "command", "models_toml"}
    assert record["command"].startswith("bandit-log calibrate --models")
    cal = load_calibration(profile / "here.json")
    assert cal == Calibration.from_json(record["calibration"])
    assert cal.device == "cpu" and cal.step_s > 0
    assert cal.arm_step_s["plain"] == 0.0 and cal.arm_step_s["k3"] == 0.0 and cal.arm_step_s["exit1"] > 0


@pytest.mark.parametrize("args, message", [
    (["--out", "{root}/here.json"], "already exists"),
    (["--out", "{root}/here.txt"], "a cost profile is a JSON file"),
    (["--out", "{root}/missing/p.json"], "does not exist"),
])
def test_calibrate_refuses_a_bad_out_before_loading_anything(profile, args, message):
    before = (profile / "here.json").read_bytes()
    r = CliRunner().invoke(cli, ["calibrate", "--models", str(profile / "models.toml")] + [a.format(root=profile) for a in args])
    assert r.exit_code != 0 and message in r.output, r.output  # 2 for a bad path, 1 for the output guard's refusal
    assert (profile / "here.json").read_bytes() == before and not (profile / "here.txt").exists()


def _prompts(path: Path) -> Path:
    pd.DataFrame({"query_id": ["a", "b"], "prompt": ["the cat sat on the mat the cat sat on the", "def f ( x ) : return x def f ("],
                  "split": ["train", "test"]}).to_parquet(path)
    return path


def test_the_reward_records_which_costs_priced_it(profile, tmp_path):
    prompts = _prompts(tmp_path / "p.parquet")
    runner = CliRunner()
    base = ["build", str(prompts), "--models", str(profile / "models.toml"), "--reward", "speedup_count", "--threads", "1"]
    assert runner.invoke(cli, base + ["--out", str(tmp_path / "own")]).exit_code == 0
    own = open_log(tmp_path / "own").metadata.reward
    assert own.priced_by.startswith("step costs measured by this build (cpu: ")
    r = runner.invoke(cli, base + ["--out", str(tmp_path / "given"), "--calibration", str(profile / "here.json")])
    assert r.exit_code == 0, r.output
    given = open_log(tmp_path / "given").metadata
    assert given.reward.priced_by.startswith(f"cost profile {profile / 'here.json'} (cpu: ")
    assert given.extra["calibration"] == json.loads((profile / "here.json").read_text())["calibration"]
    # resuming the build with the same reward is not refused for the label
    assert runner.invoke(cli, base + ["--out", str(tmp_path / "given"), "--calibration", str(profile / "here.json")]).exit_code == 0
    # a wall-clock reward is priced by no step costs: nothing recorded
    r = runner.invoke(cli, base[:-4] + ["--reward", "speedup_wall", "--threads", "1", "--out", str(tmp_path / "wall")])
    assert r.exit_code == 0, r.output
    assert open_log(tmp_path / "wall").metadata.reward.priced_by == ""
    assert "priced_by" not in open_log(tmp_path / "wall").metadata.reward.to_json()


def test_reprice_names_the_profile_and_keeps_the_label_when_only_the_reward_changes(profile, tiny_config, tmp_path):
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.pricing import Calibration

    models = tiny_config(ARMS[:2], max_new_tokens=8)
    cal = Calibration(target_step_s=0.01, arm_step_s={}, verify_token_s=0.001, round_overhead_s=0.004, plain_step_s=0.01)
    build_log(_prompts(tmp_path / "p.parquet"), models, tmp_path / "src", BuildConfig(reward=reward_definition("speedup_count")),
              threads=1, progress=False, calibration=cal)
    assert open_log(tmp_path / "src").metadata.reward.priced_by == "step costs given to the build (measured on cpu)"
    runner = CliRunner()
    r = runner.invoke(cli, ["reprice", str(tmp_path / "src"), "--out", str(tmp_path / "h200"), "--calibration", str(H200)])
    assert r.exit_code == 0, r.output
    h200 = open_log(tmp_path / "h200").metadata.reward
    assert h200.priced_by == f"cost profile {H200} (cuda: NVIDIA H200)"
    r = runner.invoke(cli, ["reprice", str(tmp_path / "h200"), "--out", str(tmp_path / "saved"), "--reward", "time_saved_count"])
    assert r.exit_code == 0, r.output
    saved = open_log(tmp_path / "saved").metadata.reward
    assert saved.metric == "time_saved" and saved.priced_by == h200.priced_by
    assert saved.same_definition(RewardDefinition.from_json({**saved.to_json(), "priced_by": "elsewhere"}))


def test_the_shipped_h200_profile_prices_counts_as_its_numbers_say(tmp_path):
    """The same counts under this CPU's costs and the H200's: each speed-up from the formula by hand."""
    from decoding.pricing import Calibration, load_calibration, speedup_count

    h200 = load_calibration(H200)
    raw = json.loads(H200.read_text())["calibration"]
    step = raw["plain_step_s"]
    assert h200.device == "cuda" and h200.step_s == pytest.approx(step)
    cpu = Calibration(target_step_s=0.05, arm_step_s={}, verify_token_s=0.005, round_overhead_s=0.01, plain_step_s=0.045)
    n, calls, drafted = 60, 20, 50  # 60 tokens in 20 verification passes over 50 drafted tokens
    for cal, r, v in ((h200, raw["round_overhead_s"] / step, raw["verify_token_s"] / step), (cpu, 0.01 / 0.045, 0.005 / 0.045)):
        expect = n / (calls * (1 + r) + drafted * v)
        assert speedup_count(n, calls, 0, 0.0, drafted, cal.relative_verify_cost(), cal.relative_round_cost()) == pytest.approx(expect)
    on_h200 = speedup_count(n, calls, 0, 0.0, drafted, h200.relative_verify_cost(), h200.relative_round_cost())
    on_cpu = speedup_count(n, calls, 0, 0.0, drafted, cpu.relative_verify_cost(), cpu.relative_round_cost())
    assert on_h200 == pytest.approx(60 / (20 * (1 + 0.0059857 / 0.0281037) + 50 * 0.000327101 / 0.0281037), rel=1e-4)
    assert on_h200 > on_cpu  # verification is nearly free on the GPU, not on this CPU
