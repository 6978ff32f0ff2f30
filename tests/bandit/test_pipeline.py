"""bandit.pipeline's selection, ground truth and row helpers (what ``bandit-log compare`` and the quickstart share),
on simulated logs whose answer is known: fixed-arm "runs" score exactly their arm's mean reward."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bandit.pipeline import by_policy_ids, deployable, select_on_split, split_rows, splits_present, true_values
from bandit.testing import write_simulated_log
from logging_data.simulate import reward_matrix

ARMS = ("arm0", "arm1", "arm2")


def _fixed(arm: int, name: str = "fixed"):
    """A run that always plays ``arm``."""
    def probabilities(frame):
        return np.eye(len(ARMS))[np.full(len(frame), arm)]

    return SimpleNamespace(config=SimpleNamespace(name=name), probabilities=probabilities, path=f"runs/{arm}")


def _refusing():
    def probabilities(frame):
        raise ValueError("never saw these prompts")

    return SimpleNamespace(config=SimpleNamespace(name="oracle", hindsight=True), probabilities=probabilities, path="runs/o")


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    opened = write_simulated_log(tmp_path_factory.mktemp("pipeline") / "log", n_prompts=90, seed=1, validation_fraction=0.2)
    return opened.read("outcomes"), opened.read("decisions")


def test_split_rows_and_splits_present(log):
    outcomes, _ = log
    assert set(split_rows(outcomes, "test")["split"].astype(str)) == {"test"}
    assert len(split_rows(outcomes, "all")) == len(split_rows(outcomes, None)) == len(outcomes)
    assert len(split_rows(outcomes.drop(columns="split"), "test")) == len(outcomes)  # no split column: every row
    assert splits_present(outcomes) == "test, train, validation"
    assert splits_present(outcomes.iloc[:0]) == "none"


def test_by_policy_ids(log):
    _, decisions = log
    assert by_policy_ids(decisions, ()) is decisions and len(by_policy_ids(decisions, ("uniform",))) == len(decisions)
    assert by_policy_ids(decisions, ("ghost",), strict=False).empty
    with pytest.raises(ValueError, match=r"--policy-id ghost: not in the decisions table \(policy_ids: uniform\)"):
        by_policy_ids(decisions, ("ghost", "uniform"))


def test_deployable_leaves_out_hindsight_fixed_and_uniform_runs():
    runs = {"ridge": _fixed(0, "regression"), "oracle": _refusing(), "arm0": _fixed(0), "u": _fixed(1, "uniform")}
    assert list(deployable(runs)) == ["ridge"]


def test_selection_is_exact_on_outcomes_and_doubly_robust_on_decisions_only(log):
    outcomes, decisions = log
    said: list[str] = []
    exact = select_on_split({"always1": _fixed(1, "regression")}, ARMS, "validation", outcomes=outcomes, say=said.append)
    _, r = reward_matrix(split_rows(outcomes, "validation"), ARMS)
    assert exact.method == "exact" and exact.candidate("always1").value == pytest.approx(r[:, 1].mean()) and not said
    dr = select_on_split({"always1": _fixed(1, "regression")}, ARMS, "validation", decisions=decisions, say=said.append)
    assert dr.method == "off-policy:dr" and dr.n == int((decisions["split"].astype(str) == "validation").sum())
    assert said == [f"note: selection on validation uses off-policy DR estimates of {dr.n} logged decisions (no outcomes there)"]
    assert select_on_split({}, ARMS, "nowhere", outcomes=outcomes, decisions=decisions) is None


def test_true_values_are_each_runs_exact_value_with_references(log):
    outcomes, _ = log
    truth = true_values({"arm2": _fixed(2), "oracle": _refusing()}, outcomes, ARMS)
    _, r = reward_matrix(split_rows(outcomes, "test"), ARMS)
    assert truth["split"] == "test" and truth["n_prompts"] == len(r)
    assert truth["runs"]["arm2"]["value"] == pytest.approx(r[:, 2].mean())
    assert truth["references"]["oracle"] == pytest.approx(r.max(axis=1).mean())
    assert truth["runs"]["oracle"] == {"value": None, "note": "never saw these prompts"}
    said: list[str] = []
    no_test = outcomes[outcomes["split"].astype(str) != "test"]
    assert true_values({"arm2": _fixed(2)}, pd.DataFrame(no_test), ARMS, say=said.append)["split"] is None
    assert said == ["note: the outcomes table has no test split; comparing on every row, including rows the runs may have trained on"]
