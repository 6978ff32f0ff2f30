"""examples/sample_efficiency.py: subsampled training, test-split values checked against the outcomes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bandit.pipeline import log2_sizes
from bandit.testing import write_simulated_log


@pytest.fixture(scope="module")
def mod(load_example):
    return load_example("sample_efficiency")


@pytest.fixture(scope="module")
def run(tmp_path_factory, mod):
    """One tiny run shared by the property tests: 90 prompts, sizes 4 and 16 and all, two draws."""
    root = tmp_path_factory.mktemp("se")
    write_simulated_log(root / "log", n_prompts=90, seed=5, decisions=False)
    outcomes = __import__("logging_data").open_log(root / "log").read("outcomes")
    n_train = outcomes.loc[outcomes["split"] == "train", "query_id"].nunique()
    res = mod.main(root / "log", root / "out", sizes=[4, 16, n_train], learners=("regression", "classifier"),
                   repeats=2, seed=1, budget="tiny", progress=False)
    return res, outcomes, n_train, root / "out"


def test_files_written_and_json_is_the_result(run):
    res, _, _, out = run
    assert (out / "sample_efficiency.png").stat().st_size > 1000
    assert json.loads((out / "sample_efficiency.json").read_text()) == json.loads(json.dumps(res))
    assert not (out / ".work").exists()  # the per-size logs and runs are cleaned up


def test_baselines_equal_a_direct_computation(run):
    res, outcomes, _, _ = run
    wide = outcomes[outcomes["split"] == "test"].pivot(index="query_id", columns="arm", values="reward")
    assert res["n_test_prompts"] == len(wide)
    for arm in res["arms"]:
        assert res["baselines"][f"fixed:{arm}"]["reward"] == pytest.approx(wide[arm].mean())
    assert res["baselines"]["uniform"]["reward"] == pytest.approx(wide.to_numpy().mean())
    assert res["baselines"]["oracle"]["reward"] == pytest.approx(wide.max(axis=1).mean())
    assert res["measures"] == ["reward"]  # the simulated log measures no speed-up columns


def test_every_policy_is_bounded_by_the_oracle_and_trained_on_its_size(run):
    res, _, n_train, _ = run
    oracle = res["baselines"]["oracle"]["reward"]
    assert len(res["runs"]) == 3 * 2 * 2
    for record in res["runs"]:
        assert record["values"]["reward"] <= oracle + 1e-12
        assert record["n_train_prompts"] == record["size"]
    assert res["sizes"] == [4, 16, n_train]
    for learner, curve in res["curves"].items():
        for point in curve["reward"]:
            vals = [r["values"]["reward"] for r in res["runs"] if r["learner"] == learner and r["size"] == point["size"]]
            assert point["mean"] == pytest.approx(np.mean(vals))
            assert point["min"] <= point["mean"] <= point["max"] <= oracle + 1e-12


def test_learning_shows_in_the_curve(run):
    res, _, _, _ = run
    s = res["summary"]
    # ridge regression does not depend on its seed: the full size (same prompts every draw) has no spread
    assert res["curves"]["regression"]["reward"][-1]["std"] == 0.0
    # one arm is clearly best per domain: with every train prompt a learner beats every single arm
    assert s["learners"]["regression"]["full_size_reward"] > s["best_arm_reward"]
    assert s["learners"]["regression"]["beats_best_arm_at"] is not None
    assert s["best_arm_reward"] == max(res["baselines"][f"fixed:{a}"]["reward"] for a in res["arms"])


def test_log_sizes():
    assert log2_sizes(96) == [4, 8, 16, 32, 64, 96]
    assert log2_sizes(64) == [4, 8, 16, 32, 64]
    assert log2_sizes(3) == [3]
    assert log2_sizes(300, start=64) == [64, 128, 256, 300]  # examples/context_signals.py's curve
    for bad, match in ((0, "no prompts"), (-1, "no prompts")):
        with pytest.raises(ValueError, match=match):
            log2_sizes(bad)
    with pytest.raises(ValueError, match="start=0"):
        log2_sizes(10, start=0)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        ({"sizes": [0, 4]}, ValueError, r"sizes must be between 1 and the \d+ train prompts"),
        ({"sizes": [10_000]}, ValueError, r"got 10000"),
        ({"repeats": 0}, ValueError, r"repeats must be an integer >= 1"),
        ({"learners": ()}, ValueError, r"learners is empty"),
        ({"learners": ("nope",), "sizes": [4]}, ValueError, r"unknown learner\(s\) nope"),
        ({"budget": "huge", "sizes": [4]}, ValueError, r"budget must be one of"),
    ],
)
def test_bad_input(mod, tmp_path, kwargs, exc, pattern):
    write_simulated_log(tmp_path / "log", n_prompts=30, decisions=False)
    with pytest.raises(exc, match=pattern):
        mod.main(tmp_path / "log", tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out" / "sample_efficiency.json").exists()


def test_a_log_without_a_test_split_is_refused(mod, tmp_path):
    write_simulated_log(tmp_path / "log", n_prompts=20, decisions=False, test_fraction=0.0)
    with pytest.raises(ValueError, match=r"no outcomes in the 'test' split \(splits present: train\)"):
        mod.main(tmp_path / "log", tmp_path / "out", progress=False)
