"""IPS: on-policy equals the mean reward, clipping never raises a weight, row order is irrelevant."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import estimators as E
from estimators.testing import logged_batches

FAST = settings(max_examples=60, deadline=None)


@FAST
@given(logged_batches(with_model=False, same_target=True))
def test_ips_with_target_equal_to_logging_is_the_on_policy_mean(batch):
    np.testing.assert_allclose(batch.weights, 1.0)
    value = E.IPS().estimate(batch, warn=False).value
    assert math.isclose(value, float(batch.rewards.mean()), rel_tol=1e-9, abs_tol=1e-9)


@FAST
@given(logged_batches(with_model=False), st.floats(0.01, 100.0), st.floats(0.01, 100.0))
def test_clipping_never_increases_a_weight(batch, c1, c2):
    raw = batch.weights
    lo, hi = sorted((c1, c2))
    w_lo, w_hi = E.IPS(clip=lo).weights(batch), E.IPS(clip=hi).weights(batch)
    assert (w_hi <= raw).all() and (w_lo <= w_hi).all()
    assert (w_lo <= lo).all()
    np.testing.assert_array_equal(E.IPS().weights(batch), raw)


@FAST
@given(logged_batches(with_model=True), st.randoms(use_true_random=False))
def test_row_order_never_changes_an_estimate(batch, random):
    perm = np.array(random.sample(range(batch.n), batch.n), dtype=np.int64)
    shuffled = batch.take(perm)
    for name in E.estimator_names():
        est = E.get_estimator(name)
        try:
            a = est.estimate(batch, warn=False).value
        except ValueError:  # self-normalised estimators with all weights 0 refuse both ways
            with pytest.raises(ValueError):
                est.estimate(shuffled, warn=False)
            continue
        b = est.estimate(shuffled, warn=False).value
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), name


def test_ips_by_hand():
    batch = E.LoggedBatch([0, 1, 1], [1.0, 2.0, 0.0], [0.5, 0.25, 0.5], [[0.5, 0.5], [0.0, 1.0], [1.0, 0.0]])
    # weights 1, 4, 0
    assert E.IPS().estimate(batch, warn=False).value == pytest.approx((1 * 1 + 4 * 2 + 0) / 3)
    assert E.IPS(clip=2.0).estimate(batch, warn=False).value == pytest.approx((1 + 2 * 2) / 3)
    np.testing.assert_allclose(E.IPS(clip=2.0).weights(batch), [1, 2, 0])


def test_normal_interval_is_the_textbook_one():
    rng = np.random.default_rng(3)
    n = 50
    batch = E.LoggedBatch(rng.integers(0, 2, n), rng.normal(size=n), np.full(n, 0.5), np.full((n, 2), 0.5))
    c = E.IPS().contributions(batch)
    e = E.IPS().estimate(batch, level=0.9)
    se = c.std(ddof=1) / math.sqrt(n)
    assert e.std_err == pytest.approx(se)
    assert e.ci_low == pytest.approx(c.mean() - 1.6448536269514722 * se)
    assert e.ci_high == pytest.approx(c.mean() + 1.6448536269514722 * se)
    assert e.ci == "normal" and e.level == 0.9 and e.n == n
