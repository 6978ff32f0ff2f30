"""bandit.suite: every policy trained on one log, evaluated on held-out decisions, one selected."""

from __future__ import annotations

import pytest

from bandit.suite import LEARNERS, evaluate_runs, holdout_decisions, select_policy, train_policies
from bandit.testing import write_simulated_log
from logging_data import open_log


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    write_simulated_log(root / "log", 90, 3, 3, 0, decisions=False)
    tp = train_policies(root / "log", root / "runs", learners=("regression", "classifier", "reinforce"), budget="tiny", progress=False)
    return root, tp


def test_every_policy_and_baseline_gets_a_run(trained):
    root, tp = trained
    arms = open_log(root / "log").metadata.arm_names
    assert set(tp.runs) == {"regression", "classifier", "reinforce", "uniform", "oracle"} | {f"fixed:{a}" for a in arms}
    assert all((p / "config.json").exists() for p in tp.runs.values())


def test_selection_never_picks_the_oracle_and_beats_single_arms(trained):
    root, tp = trained
    runs = tp.load()
    decisions, outcomes = holdout_decisions(root / "log", "test", seed=1)
    assert set(decisions["query_id"]) == set(outcomes["query_id"])
    assert decisions["propensity"].to_numpy() == pytest.approx(1 / 3)
    result = evaluate_runs(runs, decisions, outcomes, open_log(root / "log").metadata.arm_names, estimators=("ips", "dr"))
    winner = select_policy(result, "dr")
    assert winner in LEARNERS
    truth = {p.policy: p.true_value for p in result.policies}
    best_arm = max(v for k, v in truth.items() if k.startswith("fixed:"))
    assert truth[winner] > best_arm
    assert truth["oracle"] >= truth[winner]


@pytest.mark.parametrize(
    "kwargs, pattern",
    [({"budget": "huge"}, "budget must be one of"), ({"learners": ("nope",)}, "unknown learner")],
)
def test_bad_arguments(tmp_path, kwargs, pattern):
    write_simulated_log(tmp_path / "log", 20, 2, 2, 0, decisions=False)
    with pytest.raises(ValueError, match=pattern):
        train_policies(tmp_path / "log", tmp_path / "runs", progress=False, **kwargs)


def test_holdout_of_a_missing_split_is_a_clear_error(tmp_path):
    write_simulated_log(tmp_path / "log", 20, 2, 2, 0, decisions=False)
    with pytest.raises(ValueError, match="no outcomes in the 'validation' split"):
        holdout_decisions(tmp_path / "log", "validation")
