"""Simulated logging policies on full-information data: exact propensities, valid decisions, truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from logging_data import Arm, LogMetadata, create_log, validate_log
from logging_data.simulate import (
    EpsilonGreedyLogging,
    SoftmaxLogging,
    SyntheticBandit,
    UniformLogging,
    reward_matrix,
    sample_arms,
    simulate_decisions,
    synthetic_outcomes,
    true_policy_value,
)

ARMS = ("none", "small", "big")


def test_reward_matrix_pivots_in_first_seen_order_with_nan_for_missing():
    frame = pd.DataFrame({"query_id": ["b", "b", "a"], "arm": ["big", "none", "small"], "reward": [0.3, 0.1, 0.7]})
    qids, r = reward_matrix(frame, ARMS)
    assert qids == ["b", "a"]
    np.testing.assert_array_equal(r, [[0.1, np.nan, 0.3], [np.nan, 0.7, np.nan]])


@pytest.mark.parametrize(
    "frame, pattern",
    [
        (pd.DataFrame({"query_id": ["a"], "arm": ["huge"], "reward": [1.0]}), r"outcomes name arms that are not in the arm list \(huge\); arms: none, small, big"),
        (pd.DataFrame({"query_id": ["a"], "reward": [1.0]}), r"outcomes table is missing the 'arm' column"),
    ],
)
def test_reward_matrix_bad_input(frame, pattern):
    with pytest.raises(ValueError, match=pattern):
        reward_matrix(frame, ARMS)


def test_logging_policies_probabilities():
    scores = np.array([[0.0, 1.0, 2.0], [0.5, np.nan, 0.5]])
    np.testing.assert_allclose(UniformLogging().probabilities(scores), [[1 / 3] * 3, [0.5, 0, 0.5]])
    eps = EpsilonGreedyLogging(arm=1, epsilon=0.3).probabilities(scores)
    np.testing.assert_allclose(eps[0], [0.1, 0.8, 0.1])
    np.testing.assert_allclose(eps[1], [0.5, 0.0, 0.5])  # the greedy arm has no outcome here
    soft = SoftmaxLogging(temperature=1.0).probabilities(scores)
    np.testing.assert_allclose(soft[0], np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum())
    np.testing.assert_allclose(soft[1], [0.5, 0, 0.5])
    for p in (eps, soft):
        np.testing.assert_allclose(p.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: EpsilonGreedyLogging(arm=0, epsilon=0.0), r"`epsilon` must be in \(0, 1\] so every arm is explored; got 0.0"),
        (lambda: EpsilonGreedyLogging(arm=-1), r"`arm` must be a column index >= 0; got -1"),
        (lambda: EpsilonGreedyLogging(arm=5).probabilities(np.zeros((2, 3))), r"`arm` 5 is out of range for 3 arms"),
        (lambda: SoftmaxLogging(temperature=0), r"`temperature` must be a finite number > 0; got 0"),
        (lambda: UniformLogging().probabilities(np.full((2, 3), np.nan)), r"2 row\(s\) have no arm with an outcome to log \(first: row 0\)"),
    ],
)
def test_logging_policy_bad_settings(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_sample_arms_frequencies_and_exact_propensities():
    probs = np.tile([0.1, 0.0, 0.6, 0.3], (20_000, 1))
    actions, props = sample_arms(probs, np.random.default_rng(0))
    counts = np.bincount(actions, minlength=4) / len(actions)
    np.testing.assert_allclose(counts, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    assert (props == probs[np.arange(len(actions)), actions]).all() and (props > 0).all()


@pytest.mark.parametrize("policy", [UniformLogging(), EpsilonGreedyLogging(arm=2, epsilon=0.2), SoftmaxLogging(0.1)])
def test_simulated_decisions_append_to_a_log_and_validate(tmp_path, policy):
    outcomes, _ = synthetic_outcomes(30, ARMS, seed=1)
    log = create_log(tmp_path / "log", LogMetadata(arms=tuple(Arm(a) for a in ARMS)))
    log.append("outcomes", outcomes)
    frame = simulate_decisions(log.read("outcomes"), ARMS, policy, np.random.default_rng(0), policy_id="sim")
    log.append("decisions", frame)
    assert validate_log(tmp_path / "log").ok
    back = log.read("decisions")
    assert len(back) == 30 and back["propensity"].dtype == np.float64
    qids, r = reward_matrix(outcomes, ARMS)
    probs = policy.probabilities(r)
    idx = [ARMS.index(a) for a in back["arm"]]
    np.testing.assert_array_equal(back["propensity"].to_numpy(), probs[np.arange(30), idx])  # exact, never rounded
    np.testing.assert_array_equal(back["reward"].to_numpy(), r[np.arange(30), idx])
    assert list(back["query_id"]) == qids


def test_simulation_is_seeded_and_skips_unmeasured_arms():
    outcomes, _ = synthetic_outcomes(40, ARMS, seed=2)
    outcomes = outcomes[~((outcomes["arm"] == "big") & (outcomes["query_id"] < "q00020"))]
    a = simulate_decisions(outcomes, ARMS, UniformLogging(), np.random.default_rng(3))
    b = simulate_decisions(outcomes, ARMS, UniformLogging(), np.random.default_rng(3))
    pd.testing.assert_frame_equal(a, b)
    early = a[a["query_id"] < "q00020"]
    assert (early["arm"] != "big").all() and (early["propensity"] == 0.5).all()
    with pytest.raises(TypeError, match="`rng` must be a numpy.random.Generator"):
        simulate_decisions(outcomes, ARMS, UniformLogging(), 3)


def test_true_policy_value():
    r = np.array([[1.0, 0.0], [0.0, np.nan]])
    assert true_policy_value(r, np.array([[0.5, 0.5], [1.0, 0.0]])) == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"the target puts probability on arms without an outcome in 1 row\(s\) \(first: row 1\)"):
        true_policy_value(r, np.array([[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match=r"must have the same \(n, n_arms\) shape; got \(2, 2\) and \(2, 3\)"):
        true_policy_value(r, np.zeros((2, 3)))


def test_synthetic_bandit_is_seeded_and_linear():
    world = SyntheticBandit(n_arms=3, n_features=2, noise=0.0, seed=5)
    s1 = world.sample(10, np.random.default_rng(0))
    s2 = SyntheticBandit(n_arms=3, n_features=2, noise=0.0, seed=5).sample(10, np.random.default_rng(0))
    np.testing.assert_array_equal(s1.rewards, s2.rewards)
    np.testing.assert_allclose(s1.expected_rewards, s1.contexts @ world.theta + world.bias)
    np.testing.assert_array_equal(s1.rewards, s1.expected_rewards)  # no noise
    noisy = SyntheticBandit(n_arms=3, n_features=2, noise=1.0, seed=5).sample(20_000, np.random.default_rng(1))
    assert np.std(noisy.rewards - noisy.expected_rewards) == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="`n_arms` must be an integer >= 1; got 0"):
        SyntheticBandit(n_arms=0)
