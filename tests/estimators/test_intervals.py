"""Normal and bootstrap intervals on per-sample contributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from estimators import bootstrap_interval, bootstrap_means, normal_interval
from estimators import intervals


def test_bootstrap_matches_a_plain_loop_with_the_same_generator(monkeypatch):
    c = np.random.default_rng(0).normal(size=37)
    monkeypatch.setattr(intervals, "BLOCK_ELEMENTS", 37 * 3)  # several blocks
    fast = bootstrap_means(c, 10, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    expected = []
    for m in (3, 3, 3, 1):  # blocks of resamples, in the order they are drawn
        idx = rng.integers(0, 37, size=(m, 37), dtype=np.int32)
        expected.extend(c[idx].mean(axis=1))
    np.testing.assert_allclose(fast, expected)


def test_bootstrap_of_a_large_sample_agrees_with_the_normal_interval():
    c = np.random.default_rng(1).exponential(size=20_000)
    boot = bootstrap_interval(c, 0.95, 400, np.random.default_rng(2))
    norm = normal_interval(c, 0.95)
    assert boot.std_err == pytest.approx(norm.std_err, rel=0.15)
    assert boot.low == pytest.approx(norm.low, abs=norm.std_err * 0.5)
    assert boot.high == pytest.approx(norm.high, abs=norm.std_err * 0.5)


def test_bootstrap_is_reproducible_and_depends_on_the_generator():
    c = np.random.default_rng(1).normal(size=100)
    a = bootstrap_interval(c, 0.9, 50, np.random.default_rng(3))
    b = bootstrap_interval(c, 0.9, 50, np.random.default_rng(3))
    d = bootstrap_interval(c, 0.9, 50, np.random.default_rng(4))
    assert a == b and a != d


def test_one_row_has_no_standard_error():
    out = normal_interval(np.array([2.0]))
    assert math.isnan(out.std_err) and math.isnan(out.low)


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: normal_interval(np.ones(5), level=1.0), ValueError, r"`level` must be in \(0, 1\), e.g. 0.95; got 1.0"),
        (lambda: normal_interval(np.ones(5), level=0), ValueError, r"`level` must be in \(0, 1\)"),
        (lambda: normal_interval(np.ones((2, 2))), ValueError, r"contributions must have shape \(n,\) with n >= 1; got shape \(2, 2\)"),
        (lambda: normal_interval(np.array([])), ValueError, r"contributions must have shape \(n,\) with n >= 1; got shape \(0,\)"),
        (lambda: bootstrap_interval(np.ones(5), 0.95, 10, None), TypeError, r"bootstrap intervals need an explicit `rng`"),
        (lambda: bootstrap_interval(np.ones(5), 0.95, 10, 3), TypeError, r"`rng` must be a numpy.random.Generator.*got int"),
        (lambda: bootstrap_interval(np.ones(5), 0.95, 1, np.random.default_rng(0)), ValueError, r"`n_bootstrap` must be an integer >= 2; got 1"),
    ],
)
def test_bad_interval_arguments(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_estimate_rejects_unknown_ci_method():
    import estimators as E

    batch = E.LoggedBatch([0, 1], [1.0, 0.0], [0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"`ci` must be one of normal, bootstrap; got 'wald'"):
        E.IPS().estimate(batch, ci="wald")
    with pytest.raises(TypeError, match="takes a LoggedBatch; got dict"):
        E.IPS().estimate({"actions": [0]})
