"""Baseline policies: uniform, fixed arm, epsilon-greedy, and the hindsight oracle."""

from __future__ import annotations

import numpy as np
import pytest

from bandit.configs import make_config
from bandit.data import TrainingData
from bandit.policies._common import arm_values
from bandit.policy import NotFittedError, QueryKeyedPolicy, policy_probabilities
from bandit.testing import simulated_training_data

ARMS = ("a", "b", "c")


def _full(rewards, qids=None):
    r = np.asarray(rewards, dtype=np.float64)
    qids = qids or tuple(f"q{i}" for i in range(len(r)))
    return TrainingData(features=np.zeros((len(r), 2)), arm_names=ARMS, query_ids=qids, rewards=r)


def _bandit(actions, observed, propensities):
    n = len(actions)
    return TrainingData(features=np.zeros((n, 2)), arm_names=ARMS, query_ids=tuple(f"q{i}" for i in range(n)),
                        actions=np.array(actions), observed=np.array(observed, float), propensities=np.array(propensities, float))


def test_uniform_gives_equal_probability_to_every_arm():
    p = make_config("uniform").create(ARMS).fit(_full([[0, 1, 2]])).probabilities(np.ones((4, 2)))
    assert p.shape == (4, 3) and np.allclose(p, 1 / 3)


def test_fixed_always_plays_its_arm():
    policy = make_config("fixed", {"arm": "b"}).create(ARMS).fit(_full([[0.0, 1.0, 2.0], [1.0, 3.0, 0.0]]))
    assert np.array_equal(policy.probabilities(np.zeros((2, 2))), [[0, 1, 0], [0, 1, 0]])
    assert policy.training_metrics_["arm_value"] == pytest.approx(2.0)


def test_epsilon_greedy_spreads_epsilon_around_the_best_arm_on_average():
    data = _full([[0.0, 1.0, 0.5], [0.2, 0.6, 0.9]])  # b: 0.8 on average, c: 0.7
    p = make_config("epsilon-greedy", {"epsilon": 0.3}).create(ARMS).fit(data).probabilities(np.zeros((1, 2)))
    assert np.allclose(p, [[0.1, 0.8, 0.1]])


def test_epsilon_greedy_reads_bandit_feedback_with_importance_weights():
    # arm a looks best by the plain mean of its rows, but weighted by 1/p arm c is
    data = _bandit([0, 0, 2, 2], [1.0, 0.0, 0.6, 0.6], [0.9, 0.1, 0.5, 0.5])
    values = arm_values(data)
    assert values[0] == pytest.approx((1 / 0.9) / (1 / 0.9 + 1 / 0.1)) and np.isnan(values[1]) and values[2] == pytest.approx(0.6)
    p = make_config("epsilon-greedy", {"epsilon": 0.0}).create(ARMS).fit(data).probabilities(np.zeros((1, 2)))
    assert np.array_equal(p, [[0.0, 0.0, 1.0]])


def test_arm_values_under_bandit_feedback_approach_the_true_arm_means():
    full = simulated_training_data(3000, 3, 3, seed=5)
    bandit = simulated_training_data(3000, 3, 3, seed=5, feedback="bandit")
    assert np.allclose(arm_values(bandit), full.rewards.mean(axis=0), atol=0.03)


def test_oracle_picks_the_best_arm_of_each_prompt_by_query_id():
    data = _full([[0.0, 1.0, np.nan], [0.9, 0.1, 0.2], [0.3, 0.3, 0.3]], ("x", "y", "z"))
    oracle = make_config("oracle").create(ARMS).fit(data)
    assert isinstance(oracle, QueryKeyedPolicy)
    p = policy_probabilities(oracle, np.zeros((3, 2)), ["z", "x", "y"])
    assert np.array_equal(p, [[1, 0, 0], [0, 1, 0], [1, 0, 0]])  # ties go to the lowest arm index
    assert oracle.training_metrics_["value"] == pytest.approx((1.0 + 0.9 + 0.3) / 3)


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda o: o.probabilities(np.zeros((1, 2))), TypeError, "answers by query_id"),
    (lambda o: o.probabilities_for(["nope", "x"], None), ValueError, "1 prompt\\(s\\) were not in the outcomes.*query_id=nope"),
    (lambda o: o.probabilities_for(["x"], np.zeros((2, 2))), ValueError, "1 query_ids but features has 2 rows"),
    (lambda o: policy_probabilities(o, np.zeros((1, 2))), ValueError, "pass query_ids"),
])
def test_oracle_misuse_is_refused(call, exc, pattern):
    oracle = make_config("oracle").create(ARMS).fit(_full([[0.0, 1.0, 0.0]], ("x",)))
    with pytest.raises(exc, match=pattern):
        call(oracle)


def test_oracle_refuses_bandit_feedback_and_unmeasured_prompts():
    with pytest.raises(ValueError, match="needs full-information data; got bandit feedback"):
        make_config("oracle").create(ARMS).fit(_bandit([0], [1.0], [0.5]))
    with pytest.raises(ValueError, match="1 prompt\\(s\\) have no measured arm \\(first: query_id=q1\\)"):
        make_config("oracle").create(ARMS).fit(_full([[0.0, 1.0, 0.0], [np.nan] * 3]))


@pytest.mark.parametrize("name, settings, exc, pattern", [
    ("epsilon-greedy", {"epsilon": 1.5}, ValueError, "epsilon must be a finite number >= 0.0 and <= 1.0; got 1.5"),
    ("epsilon-greedy", {"epsilon": float("nan")}, ValueError, "epsilon must be a finite number"),
    ("uniform", {"seed": -1}, ValueError, "seed must be an integer >= 0; got -1"),
    ("uniform", {"featurizer": ""}, ValueError, "featurizer must be a featurizer name"),
    ("uniform", {"epsilon": 0.1}, ValueError, "has no setting 'epsilon'; valid settings: featurizer, seed"),
    ("fixed", {"arm": 3}, ValueError, "arm must be an arm name"),
])
def test_bad_configs_are_refused(name, settings, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make_config(name, settings)


@pytest.mark.parametrize("arm, pattern", [("", "set arm=NAME; the arms are a, b, c"), ("z", "arm 'z' is not one of them; the arms are a, b, c")])
def test_fixed_needs_one_of_the_arms(arm, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_config("fixed", {"arm": arm}).create(ARMS)


def test_use_before_fit_and_mismatched_inputs_are_clear_errors(tmp_path):
    policy = make_config("epsilon-greedy").create(ARMS)
    with pytest.raises(NotFittedError, match="epsilon-greedy policy is not fitted"):
        policy.probabilities(np.zeros((1, 2)))
    with pytest.raises(NotFittedError, match="nothing to save"):
        policy.save(tmp_path / "m")
    policy.fit(_full([[0.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="features must have shape \\(n, 2\\); got \\(1, 3\\)"):
        policy.probabilities(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="training data arms \\['a', 'b', 'c'\\] differ from the policy's \\['c', 'b', 'a'\\]"):
        make_config("uniform").create(("c", "b", "a")).fit(_full([[0.0, 1.0, 0.0]]))
    with pytest.raises(TypeError, match="takes bandit.data.TrainingData; got dict"):
        make_config("uniform").create(ARMS).fit({"rewards": [[1, 2, 3]]})


def test_load_refuses_other_arms_and_other_policies(tmp_path):
    make_config("epsilon-greedy").create(ARMS).fit(_full([[0.0, 1.0, 0.0]])).save(tmp_path / "m")
    with pytest.raises(ValueError, match="saved for arms \\['a', 'b', 'c'\\]; asked to load it for \\['a', 'b'\\]"):
        make_config("epsilon-greedy").load_policy(tmp_path / "m", ("a", "b"))
    with pytest.raises(ValueError, match="holds a 'epsilon-greedy' policy, not 'uniform'"):
        make_config("uniform").load_policy(tmp_path / "m", ARMS)
    with pytest.raises(FileNotFoundError, match="missing policy.json"):
        make_config("uniform").load_policy(tmp_path / "empty", ARMS)
