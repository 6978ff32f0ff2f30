"""examples/reward_analysis.py: pandas alone reads a log and gets the pivots right."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from logging_data import Arm, LogMetadata, create_log
from logging_data.simulate import synthetic_outcomes

ROOT = Path(__file__).resolve().parents[2]
ARMS = ("plain", "lookup", "draft")


def _load():
    spec = importlib.util.spec_from_file_location("reward_analysis", ROOT / "examples" / "reward_analysis.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def log_dir(tmp_path):
    frame, _ = synthetic_outcomes(60, ARMS, seed=3)
    log = create_log(tmp_path / "log", LogMetadata(arms=tuple(Arm(a) for a in ARMS)))
    log.append("outcomes", frame)
    return tmp_path / "log", frame


def test_numbers_match_a_direct_computation(log_dir, tmp_path):
    path, frame = log_dir
    res = _load().main(path, tmp_path / "out", plots=False)
    wide = frame.pivot(index="query_id", columns="arm", values="reward")
    assert res["n_prompts"] == 60
    assert res["oracle_reward"] == pytest.approx(wide.max(axis=1).mean(), abs=1e-6)
    assert res["best_single_arm"] == wide.mean().idxmax()
    shares = res["best_arm_share"]["(all)"]
    assert sum(shares.values()) == pytest.approx(1.0)
    for arm in ARMS:
        assert shares.get(arm, 0.0) == pytest.approx((wide.idxmax(axis=1) == arm).mean(), abs=1e-6)
    dom = frame["domain"].iloc[0]
    expected = frame[(frame.domain == dom) & (frame.arm == "lookup")]["reward"].mean()
    assert res["reward"][dom]["lookup"] == pytest.approx(expected, abs=1e-6)
    assert res["oracle_reward"] >= res["best_single_arm_reward"]
    assert json.loads((tmp_path / "out" / "reward_analysis.json").read_text())["n_prompts"] == 60


def test_runs_as_a_script_without_importing_this_package(log_dir, tmp_path):
    path, _ = log_dir
    probe = (
        "import runpy, sys; sys.argv=['reward_analysis', sys.argv[1], '--out', sys.argv[2]];"
        "runpy.run_path(sys.argv[0] if False else %r, run_name='__main__');"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('logging_data','estimators','bandit','decoding')];"
        "print('IMPORTED', bad, file=sys.stderr); sys.exit(3 if bad else 0)"
    ) % str(ROOT / "examples" / "reward_analysis.py")
    proc = subprocess.run([sys.executable, "-c", probe, str(path), str(tmp_path / "o")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "mean reward" in proc.stdout
    assert (tmp_path / "o" / "reward_by_domain.png").stat().st_size > 1000
    assert (tmp_path / "o" / "best_arm_share.png").exists()


def test_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no outcomes table"):
        _load().main(tmp_path / "nolog", tmp_path / "out")
