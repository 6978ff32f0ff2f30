"""examples/ope_vs_truth.py: estimates beside true values computed directly from the outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bandit.runs import load_run
from bandit.testing import simulated_arms, simulated_outcomes, write_simulated_log
from logging_data import LogMetadata, RewardDefinition, create_log
from logging_data.simulate import UniformLogging, query_frame, reward_matrix, simulate_decisions

ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr", "switch-dr", "dros")
LOGGING = ("uniform", "softmax:0.2", "epsilon-greedy:0.5")
N_REPEATS = 4


@pytest.fixture(scope="module")
def mod(load_example):
    return load_example("ope_vs_truth")


def _log_with_validation(path: Path):
    """A simulated log whose held-out prompts are split between validation and test."""
    outcomes = simulated_outcomes(90, seed=4, test_fraction=0.4)
    test_ids = sorted(outcomes.loc[outcomes["split"] == "test", "query_id"].unique())
    outcomes.loc[outcomes["query_id"].isin(test_ids[: len(test_ids) // 2]), "split"] = "validation"
    meta = LogMetadata(arms=simulated_arms(["arm0", "arm1", "arm2"]),
                       reward=RewardDefinition(kind="custom", metric="", description="simulated"))
    create_log(path, meta).append("outcomes", outcomes)
    return outcomes


@pytest.fixture(scope="module")
def run(tmp_path_factory, mod):
    root = tmp_path_factory.mktemp("ope")
    outcomes = _log_with_validation(root / "log")
    res = mod.main(root / "log", root / "out", estimators=ESTIMATORS, logging=LOGGING, learners=("regression",),
                   budget="tiny", seed=3, n_repeats=N_REPEATS, progress=False)
    return res, outcomes, root / "out"


def _heldout(outcomes):
    return outcomes[outcomes["split"].isin(["validation", "test"])].reset_index(drop=True)


def test_files_written_and_json_is_the_result(run):
    res, _, out = run
    assert json.loads((out / "ope_vs_truth.json").read_text()) == json.loads(json.dumps(res))
    for name in ("ope_vs_truth.png", "ope_coverage.png"):
        assert (out / name).stat().st_size > 1000


def test_both_held_out_splits_are_used(run):
    res, outcomes, _ = run
    held = _heldout(outcomes)
    assert res["heldout_splits"] == ["validation", "test"]
    assert res["n_heldout"] == held["query_id"].nunique()


def test_every_policy_estimator_and_logging_appears(run):
    res, _, _ = run
    assert res["policies"] == ["regression", "uniform", "fixed:arm0", "fixed:arm1", "fixed:arm2", "oracle"]
    assert res["estimators"] == list(ESTIMATORS)
    keys = {(s["logging"], s["policy"], s["estimator"]) for s in res["summary"]}
    assert keys == {(lg, p, e) for lg in LOGGING for p in res["policies"] for e in ESTIMATORS}
    assert len(res["estimates"]) == len(LOGGING) * N_REPEATS * len(res["policies"]) * len(ESTIMATORS)
    assert all(s["n_repeats"] == N_REPEATS for s in res["summary"])


def test_true_values_equal_a_direct_computation(run):
    res, outcomes, out = run
    held = _heldout(outcomes)
    wide = held.pivot(index="query_id", columns="arm", values="reward")[list(res["arms"])]
    for arm in res["arms"]:
        assert res["true_values"][f"fixed:{arm}"] == pytest.approx(wide[arm].mean(), abs=1e-12)
    assert res["true_values"]["uniform"] == pytest.approx(wide.to_numpy().mean(), abs=1e-12)
    assert res["true_values"]["oracle"] == pytest.approx(wide.max(axis=1).mean(), abs=1e-12)
    qids, rewards = reward_matrix(held, res["arms"])
    probs = load_run(out / "runs" / "regression").probabilities(query_frame(held, qids))
    assert res["true_values"]["regression"] == pytest.approx(float((probs * rewards).sum(axis=1).mean()), abs=1e-12)
    for s in res["summary"]:
        assert s["true_value"] == res["true_values"][s["policy"]]


def test_coverage_bias_and_rmse_follow_from_the_estimates(run):
    res, _, _ = run
    for s in res["summary"]:
        mine = [e for e in res["estimates"]
                if (e["logging"], e["policy"], e["estimator"]) == (s["logging"], s["policy"], s["estimator"])]
        for e in mine:
            assert e["covers_truth"] == (e["ci_low"] <= s["true_value"] <= e["ci_high"])
            assert e["ci_low"] <= e["estimate"] <= e["ci_high"]
        est = np.array([e["estimate"] for e in mine])
        assert s["coverage"] == pytest.approx(np.mean([e["covers_truth"] for e in mine]))
        assert s["bias"] == pytest.approx(est.mean() - s["true_value"])
        assert s["rmse"] == pytest.approx(np.sqrt(((est - s["true_value"]) ** 2).mean()))
        first = next(e for e in mine if e["repeat"] == 0)
        assert (s["estimate"], s["ci_low"], s["ci_high"]) == (first["estimate"], first["ci_low"], first["ci_high"])


def test_ips_of_uniform_under_uniform_logging_is_the_logged_mean(run):
    """Weights are all 1, so IPS is the mean observed reward of the documented draw rng([seed, 0, r])."""
    res, outcomes, _ = run
    held = _heldout(outcomes)
    for r in range(N_REPEATS):
        decisions = simulate_decisions(held, res["arms"], UniformLogging(), np.random.default_rng([3, 0, r]))
        ips = next(e for e in res["estimates"]
                   if (e["logging"], e["repeat"], e["policy"], e["estimator"]) == ("uniform", r, "uniform", "ips"))
        assert ips["estimate"] == pytest.approx(decisions["reward"].mean(), abs=1e-12)


def test_logging_settings_are_resolved(run):
    res, outcomes, _ = run
    settings = {lg["spec"]: lg for lg in res["logging"]}
    assert settings["softmax:0.2"]["temperature"] == 0.2
    train = outcomes[outcomes["split"] == "train"]
    assert settings["epsilon-greedy:0.5"]["arm"] == train.groupby("arm")["reward"].mean().idxmax()
    assert settings["epsilon-greedy:0.5"]["epsilon"] == 0.5


def test_selection_picks_deployable_policies(run):
    res, _, _ = run
    deployable = [p for p in res["policies"] if p != "oracle"]
    top = max(res["true_values"][p] for p in deployable)
    assert {(s["logging"], s["estimator"]) for s in res["selection"]} == {(lg, e) for lg in LOGGING for e in ESTIMATORS}
    for s in res["selection"]:
        assert set(s["picks"]) <= set(deployable) and sum(s["picks"].values()) == N_REPEATS
        assert s["truly_best"] and all(res["true_values"][p] == pytest.approx(top) for p in s["truly_best"])
        regrets = [top - res["true_values"][p] for p, n in s["picks"].items() for _ in range(n)]
        assert s["mean_regret"] == pytest.approx(np.mean(regrets))
        assert s["share_correct"] == pytest.approx(np.mean([g <= 1e-12 for g in regrets]))


def test_a_log_without_validation_uses_test_and_default_softmax_temperature(mod, tmp_path):
    write_simulated_log(tmp_path / "log", n_prompts=40, seed=2, decisions=False)
    res = mod.main(tmp_path / "log", tmp_path / "out", estimators=("dr",), logging=("softmax",), learners=(),
                   budget="tiny", n_repeats=1, progress=False)
    outcomes = simulated_outcomes(40, seed=2)
    held = outcomes[outcomes["split"] == "test"]
    assert res["heldout_splits"] == ["test"] and res["n_heldout"] == held["query_id"].nunique()
    assert res["logging"][0]["temperature"] == pytest.approx(held["reward"].std(ddof=0))


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        ({"estimators": ("ips", "magic")}, KeyError, r"unknown estimator 'magic'"),
        ({"logging": ("greedy",)}, ValueError, r"unknown logging policy 'greedy'"),
        ({"logging": ("softmax:hot",)}, ValueError, r"must be a number; got 'hot'"),
        ({"logging": ("uniform:1",)}, ValueError, r"uniform takes no setting"),
        ({"logging": ("softmax:-1",)}, ValueError, r"temperature. must be a finite number > 0"),
        ({"logging": ("epsilon-greedy:0",)}, ValueError, r"epsilon. must be in \(0, 1\]"),
        ({"n_repeats": 0}, ValueError, r"n_repeats must be an integer >= 1"),
        ({"holdout": ("train",)}, ValueError, r"never the train split"),
        ({"learners": ("nope",)}, ValueError, r"unknown learner\(s\) nope"),
        ({"budget": "huge"}, ValueError, r"budget must be one of"),
        ({"estimators": ()}, ValueError, r"need at least one estimator"),
    ],
)
def test_bad_input_fails_before_any_work(mod, tmp_path, kwargs, exc, pattern):
    write_simulated_log(tmp_path / "log", n_prompts=20, decisions=False)
    with pytest.raises(exc, match=pattern):
        mod.main(tmp_path / "log", tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_log_without_held_out_prompts_is_refused(mod, tmp_path):
    write_simulated_log(tmp_path / "log", n_prompts=20, decisions=False, test_fraction=0.0)
    with pytest.raises(ValueError, match=r"no outcomes in the held-out split\(s\) validation, test \(splits present: train\)"):
        mod.main(tmp_path / "log", tmp_path / "out", progress=False)


def test_by_estimator_sums_up_the_summary(run):
    res, _, _ = run
    assert {(b["logging"], b["estimator"]) for b in res["by_estimator"]} == {(lg, e) for lg in LOGGING for e in ESTIMATORS}
    for b in res["by_estimator"]:
        rows = [s for s in res["summary"] if (s["logging"], s["estimator"]) == (b["logging"], b["estimator"])]
        assert len(rows) == len(res["policies"])
        assert b["min_coverage"] == min(s["coverage"] for s in rows)
        assert b["mean_rmse"] == pytest.approx(np.mean([s["rmse"] for s in rows]))
        assert b["mean_abs_bias"] == pytest.approx(np.mean([abs(s["bias"]) for s in rows]))
