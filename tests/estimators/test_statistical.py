"""Statistical checks over seeded repeats, against known true values.

Two worlds:
- synthetic: ``SyntheticBandit`` (linear expected rewards, Gaussian noise); contexts are drawn
  fresh in every repeat, so the truth is the population value (from a large independent sample);
- simulated: one fixed full-information outcomes table; every repeat draws its prompts from the
  table (with replacement) and simulates the logging policy anew, so the truth is exactly
  ``true_policy_value`` over the whole table.

For IPS and DR (with a well-specified, cross-fitted per-arm linear reward model): the mean over
repeats is within 3 standard errors of the truth; 95% normal intervals cover the truth in 90-99%
of repeats; and DR's root-mean-squared error is no larger than IPS's.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import estimators as E
from logging_data.simulate import EpsilonGreedyLogging, SyntheticBandit, reward_matrix, sample_arms, synthetic_outcomes, true_policy_value

REPEATS = 200


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _summarise(estimates: list[E.Estimate], truth: float) -> dict:
    values = np.array([e.value for e in estimates])
    covered = np.array([e.ci_low <= truth <= e.ci_high for e in estimates])
    return {
        "bias_z": (values.mean() - truth) / (values.std(ddof=1) / np.sqrt(len(values))),
        "coverage": covered.mean(),
        "rmse": np.sqrt(((values - truth) ** 2).mean()),
    }


def _check(summary: dict, name: str) -> None:
    assert abs(summary["bias_z"]) < 3, f"{name}: mean estimate is {summary['bias_z']:.2f} standard errors from the truth"
    assert 0.90 <= summary["coverage"] <= 0.99, f"{name}: 95% intervals covered the truth in {summary['coverage']:.1%} of repeats"


@pytest.fixture(scope="module")
def synthetic_results():
    world = SyntheticBandit(n_arms=4, n_features=3, noise=0.5, seed=1)
    n = 400

    def policies(x):
        q = world.expected_reward(x)
        logging = 0.7 * _softmax(q) + 0.3 / world.n_arms
        target = _softmax(q / 0.3)
        return q, logging, target

    big = world.sample(1_000_000, np.random.default_rng(99))
    q_big, _, target_big = policies(big.contexts)
    truth = float((target_big * q_big).sum(axis=1).mean())

    rng = np.random.default_rng(2024)
    sample = world.sample(REPEATS * n, rng)
    q, logging, target = policies(sample.contexts)
    actions, props = sample_arms(logging, rng)
    rewards = sample.rewards[np.arange(REPEATS * n), actions]
    model = E.CrossFitRewardModel(LinearRegression(), n_folds=2)
    out = {"ips": [], "dr": []}
    for r in range(REPEATS):
        s = slice(r * n, (r + 1) * n)
        q_hat = model.fit_predict(sample.contexts[s], actions[s], rewards[s], world.n_arms)
        batch = E.LoggedBatch(actions[s], rewards[s], props[s], target[s], q_hat)
        out["ips"].append(E.IPS().estimate(batch, warn=False))
        out["dr"].append(E.DR().estimate(batch, warn=False))
    return {k: _summarise(v, truth) for k, v in out.items()}


@pytest.fixture(scope="module")
def simulated_results():
    arms = ["none", "small", "medium", "large"]
    outcomes, _ = synthetic_outcomes(2000, arms, noise=0.05, seed=5)
    qids, rewards = reward_matrix(outcomes, arms)
    domains = outcomes.drop_duplicates("query_id")["domain"].to_numpy()
    features = (domains[:, None] == np.unique(domains)[None, :]).astype(float)  # one-hot domain: well specified
    logging = EpsilonGreedyLogging(arm=1, epsilon=0.5).probabilities(rewards)
    target = np.zeros_like(rewards)
    target[np.arange(len(qids)), np.argmax(rewards, axis=1)] = 1.0  # the oracle: far from the logging policy
    truth = true_policy_value(rewards, target)
    n = 300
    rng = np.random.default_rng(7)
    rows = rng.integers(0, len(qids), REPEATS * n)  # every repeat's prompts, drawn at once
    actions_all, props_all = sample_arms(logging[rows], rng)
    model = E.CrossFitRewardModel(LinearRegression(fit_intercept=False), n_folds=2)
    out = {"ips": [], "dr": []}
    for r in range(REPEATS):
        s = slice(r * n, (r + 1) * n)
        i, a = rows[s], actions_all[s]
        y = rewards[i, a]
        batch = E.LoggedBatch(a, y, props_all[s], target[i], model.fit_predict(features[i], a, y, len(arms)))
        out["ips"].append(E.IPS().estimate(batch, warn=False))
        out["dr"].append(E.DR().estimate(batch, warn=False))
    return {k: _summarise(v, truth) for k, v in out.items()}


@pytest.mark.parametrize("name", ["ips", "dr"])
def test_synthetic_unbiased_and_covered(synthetic_results, name):
    _check(synthetic_results[name], f"synthetic {name}")


@pytest.mark.parametrize("name", ["ips", "dr"])
def test_simulated_unbiased_and_covered(simulated_results, name):
    _check(simulated_results[name], f"simulated {name}")


def test_dr_error_no_larger_than_ips_with_a_well_specified_model(synthetic_results, simulated_results):
    for results in (synthetic_results, simulated_results):
        assert results["dr"]["rmse"] <= results["ips"]["rmse"], results
