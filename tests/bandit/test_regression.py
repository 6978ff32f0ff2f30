"""Learners saved as arrays: reward regression, best-arm classifier, TaskSpec router.

Done means: on simulated data where one arm is best in each of several domains, each learner
recovers most of the oracle's value on held-out prompts, from full information and from bandit
feedback alike.
"""

from __future__ import annotations

import numpy as np
import pytest

from bandit.configs import make_config
from bandit.data import TrainingData
from bandit.policies.regression import dr_pseudo_rewards, fit_logistic, logistic_proba
from bandit.policy import softmax
from bandit.testing import simulated_training_data, take_rows

N_TRAIN, N_TEST = 400, 300


def _split(seed: int, feedback: str):
    logged = simulated_training_data(N_TRAIN + N_TEST, n_arms=3, n_domains=4, seed=seed, feedback=feedback)
    truth = simulated_training_data(N_TRAIN + N_TEST, n_arms=3, n_domains=4, seed=seed)
    return take_rows(logged, slice(0, N_TRAIN)), take_rows(truth, slice(N_TRAIN, None))


@pytest.mark.parametrize("feedback", ["full", "bandit"])
@pytest.mark.parametrize("name, settings", [
    ("regression", {}),
    ("regression", {"output": "softmax", "temperature": 0.05}),
    ("classifier", {}),
    ("classifier", {"output": "greedy"}),
    ("taskspec", {}),
    ("taskspec", {"routing": "soft"}),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_learners_recover_most_of_the_oracle_value_on_held_out_prompts(name, settings, feedback, seed):
    train, test = _split(seed, feedback)
    policy = make_config(name, settings).create(train.arm_names).fit(train)
    r = test.rewards
    value = float((policy.probabilities(test.features) * r).sum(axis=1).mean())
    oracle, uniform, best_arm = r.max(axis=1).mean(), r.mean(), r.mean(axis=0).max()
    gap_closed = (value - uniform) / (oracle - uniform)
    assert gap_closed >= 0.8, f"{name} {settings} ({feedback}) closes {gap_closed:.2f} of the uniform-to-oracle gap"
    assert value > best_arm + 0.5 * (oracle - best_arm), f"{name} barely beats the best single arm ({value:.3f} vs {best_arm:.3f})"


def test_regression_predictions_are_ridge_per_arm_and_softmax_uses_the_temperature():
    from sklearn.linear_model import Ridge

    train, test = _split(0, "full")
    policy = make_config("regression", {"alpha": 2.0, "output": "softmax", "temperature": 0.2}).create(train.arm_names).fit(train)
    x, x_test = train.features.astype(np.float64), test.features.astype(np.float64)
    pred = np.column_stack([Ridge(alpha=2.0).fit(x, train.rewards[:, a]).predict(x_test) for a in range(3)])
    assert np.allclose(policy.predict_rewards(test.features), pred, atol=1e-8)
    assert np.allclose(policy.probabilities(test.features), softmax(pred, 0.2), atol=1e-8)


def test_regression_never_prefers_an_arm_bandit_feedback_never_tried():
    train, test = _split(0, "bandit")
    never = train.actions != 2
    data = take_rows(train, never)
    policy = make_config("regression").create(data.arm_names).fit(data)
    assert policy.training_metrics_["arms_without_data"] == ["arm2"]
    assert policy.probabilities(test.features)[:, 2].max() == 0.0


@pytest.mark.parametrize("n_classes", [2, 4])
def test_logistic_probabilities_equal_scikit_learn_predict_proba(n_classes):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 5))
    y = (x[:, 0] > 0).astype(int) + (2 * (x[:, 1] > 0) if n_classes == 4 else 0)
    classes, coef, intercept = fit_logistic(x, y, None, C=3.0, max_iter=500, seed=0)
    ref = LogisticRegression(C=3.0, max_iter=500, random_state=0).fit(x, y)
    assert np.allclose(logistic_proba(x, classes.size, coef, intercept), ref.predict_proba(x), atol=1e-10)


def test_classifier_with_a_single_label_is_constant_and_keeps_zero_for_other_arms(tmp_path):
    rewards = np.tile([0.0, 1.0, 0.0], (10, 1))
    data = TrainingData(features=np.random.default_rng(0).standard_normal((10, 3)), arm_names=("a", "b", "c"),
                        query_ids=tuple(map(str, range(10))), rewards=rewards)
    config = make_config("classifier")
    policy = config.create(data.arm_names).fit(data)
    assert np.array_equal(policy.probabilities(data.features), np.tile([0.0, 1.0, 0.0], (10, 1)))
    policy.save(tmp_path)
    assert np.array_equal(config.load_policy(tmp_path, data.arm_names).probabilities(data.features[:2]), [[0, 1, 0], [0, 1, 0]])


def test_dr_pseudo_rewards_are_unbiased_for_every_arm():
    bandit = simulated_training_data(4000, 3, 3, seed=9, feedback="bandit")
    truth = simulated_training_data(4000, 3, 3, seed=9)
    gamma = dr_pseudo_rewards(bandit.features.astype(np.float64), bandit, alpha=1.0)
    assert np.allclose(gamma.mean(axis=0), truth.rewards.mean(axis=0), atol=0.03)


def test_taskspec_routes_each_domain_to_its_best_arm():
    train, test = _split(0, "full")
    policy = make_config("taskspec").create(train.arm_names).fit(train)
    assert policy.training_metrics_["domain_arms"] == {"d0": "arm0", "d1": "arm1", "d2": "arm2", "d3": "arm0"}
    assert policy.training_metrics_["train_domain_accuracy"] > 0.9
    soft = make_config("taskspec", {"routing": "soft"}).create(train.arm_names).fit(train).probabilities(test.features)
    assert np.allclose(soft.sum(axis=1), 1.0) and ((soft > 0) & (soft < 1)).any()


def test_taskspec_needs_a_domain_per_prompt():
    data = simulated_training_data(20, 3, 2, seed=0)
    unlabelled = TrainingData(features=data.features, arm_names=data.arm_names, query_ids=data.query_ids,
                              rewards=data.rewards, domains=("d0",) * 19 + (None,))
    with pytest.raises(ValueError, match="1 training prompt\\(s\\) have no domain label \\(first: query_id=q00019\\)"):
        make_config("taskspec").create(data.arm_names).fit(unlabelled)
    no_labels = TrainingData(features=data.features, arm_names=data.arm_names, query_ids=data.query_ids, rewards=data.rewards)
    with pytest.raises(ValueError, match="needs a domain label per training prompt; the data has 0 labels for 20 prompts"):
        make_config("taskspec").create(data.arm_names).fit(no_labels)


@pytest.mark.parametrize("name, settings, pattern", [
    ("regression", {"alpha": -1}, "alpha must be a finite number >= 0.0; got -1"),
    ("regression", {"output": "argmax"}, "output must be one of 'greedy', 'softmax'; got 'argmax'"),
    ("regression", {"temperature": 0}, "temperature must be a finite number > 0.0; got 0"),
    ("classifier", {"C": 0}, "C must be a finite number > 0.0; got 0"),
    ("classifier", {"max_iter": 2.5}, "max_iter must be an integer >= 1; got 2.5"),
    ("taskspec", {"routing": "fuzzy"}, "routing must be one of 'hard', 'soft'; got 'fuzzy'"),
    ("regression", {"importance_weighted": "yes"}, "importance_weighted must be true or false; got 'yes'"),
])
def test_bad_settings_are_refused(name, settings, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_config(name, settings)
