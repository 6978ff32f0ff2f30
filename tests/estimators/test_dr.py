"""The doubly robust family: DR, SNDR, Switch-DR and DRos, against IPS, SNIPS and DM."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings

import estimators as E
from estimators.testing import logged_batches

FAST = settings(max_examples=60, deadline=None)


@FAST
@given(logged_batches(with_model=False))
def test_dr_with_a_zero_reward_model_equals_ips(batch):
    zero = batch.with_reward_hat(np.zeros((batch.n, batch.n_arms)))
    dr, ips = E.DR().estimate(zero, warn=False), E.IPS().estimate(batch, warn=False)
    assert math.isclose(dr.value, ips.value, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(dr.std_err, ips.std_err, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(dr.std_err) and math.isnan(ips.std_err))
    if batch.weights.sum() > 0:
        assert math.isclose(E.SNDR().estimate(zero, warn=False).value, E.SNIPS().estimate(batch, warn=False).value, rel_tol=1e-9, abs_tol=1e-9)


@FAST
@given(logged_batches(with_model=True))
def test_limits_of_switch_dr_and_dros(batch):
    dr = E.DR().estimate(batch, warn=False).value
    dm = E.DM().estimate(batch, warn=False).value
    close = lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)  # noqa: E731
    assert close(E.SwitchDR().estimate(batch, warn=False).value, dr)  # tau = inf: plain DR
    assert close(E.DRos(lam=math.inf).estimate(batch, warn=False).value, dr)
    tiny = float(batch.weights[batch.weights > 0].min()) / 2 if (batch.weights > 0).any() else 1.0
    assert close(E.SwitchDR(tau=tiny).estimate(batch, warn=False).value, dm)  # every weight above tau: DM
    shrunk = E.DRos(lam=1.0).shrunk_weights(batch)
    assert (np.abs(shrunk) <= np.abs(batch.weights) + 1e-12).all() and (shrunk <= 0.5 + 1e-12).all()


def test_dr_by_hand():
    batch = E.LoggedBatch(
        actions=[0, 1], rewards=[1.0, 0.0], propensities=[0.5, 0.5],
        target_probs=[[1.0, 0.0], [0.25, 0.75]], reward_hat=[[0.5, 0.2], [0.4, 0.6]],
    )
    dm = np.array([0.5, 0.25 * 0.4 + 0.75 * 0.6])
    corr = np.array([2.0 * (1.0 - 0.5), 1.5 * (0.0 - 0.6)])
    np.testing.assert_allclose(E.DR().contributions(batch), dm + corr)
    np.testing.assert_allclose(E.DM().contributions(batch), dm)
    np.testing.assert_allclose(E.SwitchDR(tau=1.8).contributions(batch), dm + np.array([0.0, corr[1]]))
    lam = 4.0
    w = np.array([2.0, 1.5])
    np.testing.assert_allclose(E.DRos(lam=lam).contributions(batch), dm + w * lam / (w**2 + lam) * np.array([0.5, -0.6]))
    sndr = dm.mean() + (corr.sum()) / w.sum()
    assert E.SNDR().estimate(batch).value == pytest.approx(sndr)


def test_dr_family_needs_a_reward_model():
    batch = E.LoggedBatch([0], [1.0], [1.0], [[1.0, 0.0]])
    for est in (E.DM(), E.DR(), E.SNDR(), E.SwitchDR(), E.DRos()):
        with pytest.raises(ValueError, match=rf"estimator '{est.name}' needs reward-model predictions: the batch has no `reward_hat`"):
            est.estimate(batch)
