"""bandit.report: several target policies x estimators on a decisions frame, truth, HTML/JSON report."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

import estimators as E
from bandit.report import EvaluationResult, baseline_probs, evaluate_policies, hashed_features, write_html_report
from logging_data.simulate import EpsilonGreedyLogging, UniformLogging, reward_matrix, simulate_decisions, synthetic_outcomes

ARMS = ("none", "small", "big")


@pytest.fixture(scope="module")
def world():
    outcomes, _ = synthetic_outcomes(240, ARMS, noise=0.05, seed=3)
    decisions = simulate_decisions(outcomes, ARMS, UniformLogging(), np.random.default_rng(0), policy_id="uniform")
    return outcomes, decisions


@pytest.fixture(scope="module")
def result(world):
    outcomes, decisions = world
    targets = {b: baseline_probs(b, decisions, ARMS, outcomes) for b in ("uniform", "fixed:small", "oracle")}
    ests = [E.get_estimator(n) for n in ("ips", "snips", "dr", "dm")]
    return evaluate_policies(decisions, ARMS, targets, ests, outcomes=outcomes, reward_model=E.CrossFitRewardModel(n_folds=3))


def test_baseline_probabilities(world):
    outcomes, decisions = world
    n = len(decisions)
    np.testing.assert_allclose(baseline_probs("uniform", decisions, ARMS), np.full((n, 3), 1 / 3))
    fixed = baseline_probs("fixed:big", decisions, ARMS)
    assert (fixed[:, 2] == 1).all() and fixed.sum() == n
    oracle = baseline_probs("oracle", decisions, ARMS, outcomes)
    qids, r = reward_matrix(outcomes, ARMS)
    assert list(decisions["query_id"]) == qids
    np.testing.assert_array_equal(oracle.argmax(axis=1), r.argmax(axis=1))


@pytest.mark.parametrize(
    "spec, use_outcomes, pattern",
    [
        ("fixed:huge", False, r"baseline 'fixed:huge': unknown arm 'huge'; arms: none, small, big"),
        ("greedy", False, r"unknown baseline 'greedy'; expected one of: uniform, fixed:ARM, oracle"),
        ("oracle", False, r"baseline 'oracle' needs the log's outcomes table"),
    ],
)
def test_bad_baselines(world, spec, use_outcomes, pattern):
    outcomes, decisions = world
    with pytest.raises(ValueError, match=pattern):
        baseline_probs(spec, decisions, ARMS, outcomes if use_outcomes else None)


def test_oracle_needs_outcomes_for_every_decision(world):
    outcomes, decisions = world
    partial = outcomes[outcomes["query_id"] != decisions["query_id"].iloc[5]]
    with pytest.raises(ValueError, match=rf"1 decision\(s\) have none \(first: query_id={decisions['query_id'].iloc[5]}\)"):
        baseline_probs("oracle", decisions, ARMS, partial)


def test_result_rows_and_truth(result, world):
    outcomes, decisions = world
    assert isinstance(result, EvaluationResult) and result.n == len(decisions)
    rows = result.rows()
    assert len(rows) == 3 * 4 and {r["policy"] for r in rows} == {"uniform", "fixed:small", "oracle"}
    qids, r = reward_matrix(outcomes, ARMS)
    truths = {p.policy: p.true_value for p in result.policies}
    assert truths["uniform"] == pytest.approx(r.mean())
    assert truths["fixed:small"] == pytest.approx(r[:, 1].mean())
    assert truths["oracle"] == pytest.approx(r.max(axis=1).mean())
    dr = {row["policy"]: row for row in rows if row["estimator"] == "dr"}
    for name, row in dr.items():  # a well-fitted DR on 240 rows lands near the truth
        assert abs(row["estimate"] - row["true_value"]) < 4 * row["std_err"], row
    assert result.reward_model == "Ridge per arm, 3-fold cross-fitted"
    uniform_ips = next(p for p in result.policies if p.policy == "uniform")
    np.testing.assert_allclose(uniform_ips.weights, 1.0)  # target = logging


def test_truth_is_none_without_outcomes_for_the_rows(world):
    outcomes, decisions = world
    partial = outcomes[outcomes["query_id"] != decisions["query_id"].iloc[0]]
    res = evaluate_policies(decisions, ARMS, {"uniform": baseline_probs("uniform", decisions, ARMS)}, [E.IPS()], outcomes=partial)
    assert res.policies[0].true_value is None and res.reward_model is None


@pytest.mark.filterwarnings("ignore::estimators.LowEffectiveSampleSizeWarning")
def test_unsupported_arms_become_warnings_in_the_result(world):
    outcomes, _ = world
    logged = simulate_decisions(outcomes[outcomes["arm"] != "big"], ARMS, EpsilonGreedyLogging(0, 0.5), np.random.default_rng(1))
    with pytest.warns(E.SupportWarning, match="big"):
        res = evaluate_policies(logged, ARMS, {"fixed:big": baseline_probs("fixed:big", logged, ARMS)}, [E.IPS()])
    assert any("fixed:big" in w and "never chose" in w for w in res.warnings)
    assert res.rows()[0]["estimate"] == 0.0


def test_bootstrap_results_are_seeded(world):
    outcomes, decisions = world
    t = {"uniform": baseline_probs("uniform", decisions, ARMS)}
    a = evaluate_policies(decisions, ARMS, t, [E.IPS()], ci="bootstrap", n_bootstrap=50, seed=4)
    b = evaluate_policies(decisions, ARMS, t, [E.IPS()], ci="bootstrap", n_bootstrap=50, seed=4)
    assert a.rows() == b.rows() and a.ci == "bootstrap"


@pytest.mark.parametrize(
    "change, exc, pattern",
    [
        (dict(targets={}), ValueError, r"no target policy to evaluate"),
        (dict(estimators=[]), ValueError, r"no estimator given"),
        (dict(targets={"u": np.full((5, 3), 1 / 3)}), ValueError, r"`target_probs` must have 240 rows like `actions`; got shape \(5, 3\)"),
        (dict(targets={"u": np.full((240, 3), 0.5)}), ValueError, r"`target_probs` rows must sum to 1; 240 row\(s\) do not \(first: row 0"),
    ],
)
def test_bad_evaluation_input(world, change, exc, pattern):
    _, decisions = world
    args = dict(targets={"u": np.full((len(decisions), 3), 1 / 3)}, estimators=[E.IPS()])
    args.update(change)
    with pytest.raises(exc, match=pattern):
        evaluate_policies(decisions, ARMS, args["targets"], args["estimators"])


def test_unknown_arm_in_decisions(world):
    _, decisions = world
    bad = decisions.copy()
    bad.loc[7, "arm"] = "huge"
    with pytest.raises(ValueError, match=r"decisions name 1 arm\(s\) outside the arm list \(first: row 7, arm 'huge'\)"):
        evaluate_policies(bad, ARMS, {"u": np.full((len(bad), 3), 1 / 3)}, [E.IPS()])
    with pytest.raises(ValueError, match="decisions table is empty"):
        evaluate_policies(decisions.iloc[:0], ARMS, {"u": np.zeros((0, 3))}, [E.IPS()])


def test_hashed_features_are_stateless_rows(world):
    _, decisions = world
    x = hashed_features(decisions)
    y = hashed_features(decisions.iloc[::-1])
    assert x.shape == (len(decisions), 2**14)
    assert (x[0] != y[len(decisions) - 1]).nnz == 0


def test_html_report_is_self_contained_with_plots_and_json(result, tmp_path):
    path = write_html_report(result, tmp_path / "rep")
    page = path.read_text()
    assert path.name == "report.html" and "<table>" in page and "oracle" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    numbers = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert numbers["n"] == result.n and len(numbers["rows"]) == 12
    assert numbers["policies"][0]["weight_quantiles"]["max"] == pytest.approx(1.0)
    assert not list((tmp_path / "rep").glob(".*"))  # no temporary files left


def test_report_into_a_file_path_is_an_error(result, tmp_path):
    f = tmp_path / "file"
    f.write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        write_html_report(result, f)
    assert f.read_text() == "keep me"


def test_an_estimator_undefined_for_one_policy_gives_nan_not_an_abort():
    import numpy as np
    import pandas as pd

    from bandit.report import evaluate_policies
    from estimators import SNIPS, IPS

    decisions = pd.DataFrame({"query_id": ["a", "b", "c"], "prompt": ["x", "y", "z"], "domain": ["d"] * 3,
                              "arm": ["p", "p", "p"], "propensity": [0.5] * 3, "reward": [1.0, 0.5, 0.0], "policy_id": ["u"] * 3})
    never_logged = np.tile([0.0, 1.0], (3, 1))  # always the arm no decision logged
    logged = np.tile([1.0, 0.0], (3, 1))
    with pytest.warns(RuntimeWarning, match="SNIPS is undefined"):
        result = evaluate_policies(decisions, ("p", "q"), {"never": never_logged, "logged": logged}, [SNIPS(), IPS()])
    by = {(r["policy"], r["estimator"]): r["estimate"] for r in result.rows()}
    assert np.isnan(by[("never", "snips")]) and by[("never", "ips")] == 0.0
    assert by[("logged", "snips")] == pytest.approx(0.5)
    assert any("SNIPS is undefined" in w for w in result.warnings)
