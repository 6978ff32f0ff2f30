"""DM: the reward model averaged under the target; exact when the model is."""

from __future__ import annotations

import numpy as np
import pytest

import estimators as E
from logging_data.simulate import SyntheticBandit


def test_dm_with_the_true_expected_rewards_is_the_conditional_value():
    world = SyntheticBandit(n_arms=3, n_features=2, seed=4)
    rng = np.random.default_rng(0)
    s = world.sample(500, rng)
    target = rng.dirichlet(np.ones(3), size=500)
    actions = rng.integers(0, 3, 500)
    batch = E.LoggedBatch(actions, s.rewards[np.arange(500), actions], np.full(500, 1 / 3), target, s.expected_rewards)
    truth = float((target * s.expected_rewards).sum(axis=1).mean())
    assert E.DM().estimate(batch).value == pytest.approx(truth, rel=1e-12)


def test_dm_ignores_the_logged_rewards():
    rng = np.random.default_rng(1)
    n = 30
    base = dict(actions=rng.integers(0, 2, n), propensities=np.full(n, 0.5), target_probs=np.full((n, 2), 0.5), reward_hat=rng.normal(size=(n, 2)))
    a = E.DM().estimate(E.LoggedBatch(rewards=np.zeros(n), **base)).value
    b = E.DM().estimate(E.LoggedBatch(rewards=rng.normal(size=n) * 100, **base)).value
    assert a == b
