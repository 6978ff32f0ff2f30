"""Building a full-information log on tiny models: contents, resume after an exception, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from logging_data import open_log, validate_log

PROMPTS = [
    ("q1", "the quick brown fox jumps over the lazy dog the quick brown", "creative", "train"),
    ("q2", "def add ( a , b ) : return a + b def add (", "code", "train"),
    ("q3", "the cat sat on the mat and the dog sat on the", "creative", "test"),
    ("q4", "summarize the following text in one line", "summarize", "train"),
]


@pytest.fixture()
def prompts_file(tmp_path) -> Path:
    p = tmp_path / "prompts.parquet"
    pd.DataFrame(PROMPTS, columns=["query_id", "prompt", "domain", "split"]).assign(x_source=["a", "b", "c", "d"]).to_parquet(p)
    return p


@pytest.fixture(scope="module")
def build_cfg():
    from decoding.build import BuildConfig, reward_definition

    return BuildConfig(reward=reward_definition("align_accept", alpha=0.1), batch_size=2, calibration_context=16, calibration_repeats=2)


COMPARABLE = ["query_id", "arm", "prompt", "domain", "split", "x_source", "align_prefix", "align_position", "align_lcs",
              "align_accept", "n_new_tokens", "target_calls", "draft_calls", "draft_tokens", "accepted_tokens",
              "lossless", "arm_output", "target_output", "n_repeats"]


def _rows(path) -> pd.DataFrame:
    return open_log(path).read("outcomes").sort_values(["query_id", "arm"]).reset_index(drop=True)


def test_build_writes_every_arm_for_every_prompt(session, all_arms_config, prompts_file, build_cfg, tmp_path):
    from decoding.build import build_log

    out = tmp_path / "log"
    s = build_log(prompts_file, all_arms_config, out, build_cfg, session=session, command="test", progress=False)
    assert (s.n_prompts, s.n_prompts_decoded, s.n_rows_written, s.n_rows_skipped, s.n_lossless_failures) == (4, 4, 20, 0, 0)
    assert validate_log(out).ok
    log = open_log(out)
    df = _rows(out)
    assert len(df) == 20 and set(df["arm"]) == set(all_arms_config.arm_names)
    assert df["lossless"].all()
    assert (df["accepted_tokens"] == df["n_new_tokens"] - df["target_calls"]).all()
    plain = df[df["arm"] == "plain"]
    assert (plain["reward"] == 0).all() and plain["align_accept"].isna().all() and (plain["speedup_count"] == 1).all()
    lookup = df[df["arm"] == "lookup"]
    assert lookup["align_prefix"].isna().all() and lookup["align_accept"].notna().all()
    d = df[df["arm"] == "draft"]
    assert ((d["reward"] - (d["align_accept"] - 0.1 * d["arm_cost"])).abs() < 1e-12).all()
    assert (d["arm_cost"] > 0).all() and (d["draft_calls"] > 0).all()
    # the none arm's tokens/target output are the reference for every arm of the same prompt
    assert df.groupby("query_id")["target_output"].nunique().eq(1).all()
    assert df.groupby("query_id")["n_new_tokens"].nunique().eq(1).all()
    extra = log.metadata.extra
    assert extra["command"] == "test" and extra["calibration"]["target_step_s"] > 0
    assert {"hardware", "versions", "models_toml"} <= set(extra) and extra["hardware"]["torch_threads"] >= 1
    costs = {a.name: a.cost for a in log.metadata.arms}
    assert costs["plain"] == 0 and costs["lookup"] == 0 and costs["draft"] > 0
    assert log.metadata.reward.alpha == 0.1
    # running it again decodes nothing and writes nothing
    s2 = build_log(prompts_file, all_arms_config, out, build_cfg, session=session, progress=False)
    assert (s2.n_prompts_decoded, s2.n_rows_written, s2.n_rows_skipped) == (0, 0, 20)


def test_resume_after_exception_equals_uninterrupted(session, all_arms_config, prompts_file, build_cfg, tmp_path, monkeypatch, crash_on_second_call):
    from decoding import build as build_mod
    from decoding.build import build_log

    full = tmp_path / "full"
    build_log(prompts_file, all_arms_config, full, build_cfg, session=session, progress=False)

    part = tmp_path / "part"
    real = crash_on_second_call(build_mod, "_build_batch")
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_log(prompts_file, all_arms_config, part, build_cfg, session=session, progress=False)
    assert open_log(part).n_rows("outcomes") == 10  # the first batch (2 prompts x 5 arms) survived
    monkeypatch.setattr(build_mod, "_build_batch", real)
    s = build_log(prompts_file, all_arms_config, part, build_cfg, session=session, progress=False)
    assert (s.n_prompts_decoded, s.n_rows_written, s.n_rows_skipped) == (2, 10, 10)
    assert validate_log(part).ok
    a, b = _rows(full), _rows(part)
    pd.testing.assert_frame_equal(a[COMPARABLE], b[COMPARABLE])


def _committed(out) -> int:
    """Rows the log at ``out`` holds now (0 while it does not exist yet)."""
    try:
        return open_log(out).n_rows("outcomes")
    except Exception:
        return 0


@pytest.mark.slow  # two fresh interpreters importing transformers: ~25 s here
def test_kill_9_mid_build_then_resume(write_tiny_models, tiny_models, prompts_file, tmp_path):
    from .conftest import all_arms

    models = write_tiny_models(tmp_path / "models.toml", all_arms(tiny_models["draft"]))
    out = tmp_path / "log"
    cmd = [sys.executable, "-m", "bandit.cli.main", "build", str(prompts_file), "--models", str(models), "--out", str(out),
           "--batch-size", "1", "--threads", "1", "--json"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 600  # a fresh interpreter's imports and model load: 20 s idle, minutes on a loaded machine
    while time.time() < deadline and _committed(out) < 5:  # the first batch's rows committed
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert killed or proc.returncode == 0, err.decode()[-2000:]
    n_before = open_log(out).n_rows("outcomes")
    assert n_before % 5 == 0 and n_before >= 5
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    log = open_log(out)
    assert log.n_rows("outcomes") == 20 and validate_log(out).ok
    keys = log.read("outcomes")[["query_id", "arm"]]
    assert not keys.duplicated().any()
    assert killed or n_before == 20
