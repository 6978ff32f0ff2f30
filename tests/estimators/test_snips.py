"""SNIPS: a weighted average of the observed rewards."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import estimators as E
from estimators.testing import logged_batches


@settings(max_examples=80, deadline=None)
@given(logged_batches(with_model=False))
def test_snips_stays_within_the_reward_range(batch):
    if batch.weights.sum() == 0:
        with pytest.raises(ValueError, match="SNIPS is undefined"):
            E.SNIPS().estimate(batch, warn=False)
        return
    value = E.SNIPS().estimate(batch, warn=False).value
    lo, hi = batch.rewards.min(), batch.rewards.max()
    tol = 1e-9 * max(1.0, abs(lo), abs(hi))
    assert lo - tol <= value <= hi + tol


def test_snips_by_hand_and_its_linearised_contributions():
    batch = E.LoggedBatch([0, 1, 1], [1.0, 2.0, 0.0], [0.5, 0.25, 0.5], [[0.5, 0.5], [0.0, 1.0], [1.0, 0.0]])
    w = np.array([1.0, 4.0, 0.0])
    v = (1 * 1 + 4 * 2) / 5
    c = E.SNIPS().contributions(batch)
    assert c.mean() == pytest.approx(v)
    np.testing.assert_allclose(c, v + w * (batch.rewards - v) / w.mean())


def test_snips_is_invariant_to_scaling_the_weights():
    rng = np.random.default_rng(0)
    n = 40
    actions = rng.integers(0, 2, n)
    target = np.tile([0.3, 0.7], (n, 1))
    a = E.LoggedBatch(actions, rng.normal(size=n), np.full(n, 0.5), target)
    b = E.LoggedBatch(actions, a.rewards, np.full(n, 0.25), target)  # every weight doubled
    assert E.SNIPS().estimate(a).value == pytest.approx(E.SNIPS().estimate(b).value)
    assert E.IPS().estimate(b).value == pytest.approx(2 * E.IPS().estimate(a).value)


def test_snips_refuses_when_every_weight_is_zero():
    batch = E.LoggedBatch([0, 0], [1.0, 2.0], [1.0, 1.0], [[0.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="SNIPS is undefined on this batch: the target policy gives probability 0 to every logged action"):
        E.SNIPS().estimate(batch, warn=False)
