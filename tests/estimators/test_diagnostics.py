"""Diagnostics: effective sample size, max weight, unsupported arms, and the warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import estimators as E


def test_effective_sample_size():
    assert E.effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert E.effective_sample_size(np.array([1.0, 0, 0, 0])) == pytest.approx(1)
    assert E.effective_sample_size(np.zeros(3)) == 0.0
    assert E.effective_sample_size(np.array([2.0, 2.0, 0.0, 0.0])) == pytest.approx(2)


def test_on_policy_batch_has_full_ess_and_no_warning():
    n = 20
    probs = np.tile([0.2, 0.8], (n, 1))
    batch = E.LoggedBatch(np.r_[np.zeros(5, int), np.ones(15, int)], np.ones(n), probs[np.arange(n), np.r_[np.zeros(5, int), np.ones(15, int)]], probs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = E.diagnose(batch)
    assert d.effective_sample_size == pytest.approx(n) and d.max_weight == pytest.approx(1) and d.unsupported_arms == ()


def test_unsupported_arm_warns_with_names_and_mass():
    n = 10
    batch = E.LoggedBatch(np.zeros(n, int), np.ones(n), np.full(n, 0.5), np.tile([0.5, 0.0, 0.5], (n, 1)))
    with pytest.warns(E.SupportWarning, match=r"puts 50\.0% of its probability on arm\(s\) big that the logging policy never chose in these 10 rows"):
        d = E.diagnose(batch, arm_names=("none", "small", "big"))
    assert d.unsupported_arms == (2,) and d.unsupported_mass == pytest.approx(0.5)
    est = E.IPS().estimate(batch, warn=False)  # a warning, not an error: the estimate exists
    assert np.isfinite(est.value)


def test_low_ess_warns():
    n = 200
    actions = np.zeros(n, int)
    actions[0] = 1
    target = np.tile([0.0, 1.0], (n, 1))
    props = np.full(n, 0.999)
    props[0] = 0.001
    batch = E.LoggedBatch(actions, np.ones(n), props, target)
    with pytest.warns(E.LowEffectiveSampleSizeWarning, match=r"effective sample size is 1\.0 of 200 rows \(max weight 1e\+03\)"):
        d = E.diagnose(batch)
    assert d.max_weight == pytest.approx(1000)


def test_estimate_carries_diagnostics():
    batch = E.LoggedBatch([0, 1], [1.0, 0.0], [0.5, 0.5], [[1.0, 0.0], [0.0, 1.0]])
    e = E.IPS().estimate(batch)
    assert e.diagnostics.effective_sample_size == pytest.approx(2) and e.diagnostics.max_weight == pytest.approx(2)
    assert e.to_json()["diagnostics"]["max_weight"] == pytest.approx(2)
