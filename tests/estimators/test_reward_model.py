"""Cross-fitted reward models: out-of-fold, accurate when well specified, clear about bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LinearRegression

from estimators import CrossFitRewardModel
from logging_data.simulate import SyntheticBandit


def _data(n=600, seed=0):
    world = SyntheticBandit(n_arms=3, n_features=4, noise=0.1, seed=seed)
    rng = np.random.default_rng(seed)
    s = world.sample(n, rng)
    actions = rng.integers(0, 3, n)
    return s, actions, s.rewards[np.arange(n), actions]


def test_well_specified_model_recovers_the_expected_rewards():
    s, a, r = _data()
    q = CrossFitRewardModel(LinearRegression(), n_folds=3).fit_predict(s.contexts, a, r, 3)
    assert q.shape == (600, 3) and q.dtype == np.float64
    assert np.abs(q - s.expected_rewards).max() < 0.1


def test_predictions_are_out_of_fold():
    s, a, r = _data(n=200)
    model = CrossFitRewardModel(LinearRegression(), n_folds=4, seed=1)
    q = model.fit_predict(s.contexts, a, r, 3)
    r2 = r.copy()
    r2[17] += 1000.0  # row 17's own reward must not move its own predictions
    q2 = model.fit_predict(s.contexts, a, r2, 3)
    np.testing.assert_allclose(q2[17], q[17])
    assert not np.allclose(q2, q)  # but it does move the other folds' predictions


def test_sparse_features_and_default_regressor():
    s, a, r = _data(n=120)
    q = CrossFitRewardModel(n_folds=2).fit_predict(sp.csr_matrix(s.contexts), a, r, 3)
    assert q.shape == (120, 3) and np.isfinite(q).all()


def test_arm_without_training_rows_falls_back_to_the_fold_mean():
    s, a, r = _data(n=90)
    a = np.where(a == 2, 0, a)  # arm 2 never chosen
    model = CrossFitRewardModel(LinearRegression(), n_folds=3, seed=0)
    q = model.fit_predict(s.contexts, a, r, 3)
    folds = np.random.default_rng(0).permutation(90) % 3
    for k in range(3):
        np.testing.assert_allclose(q[folds == k, 2], r[folds != k].mean())


def test_template_regressor_is_never_fitted():
    s, a, r = _data(n=60)
    template = LinearRegression()
    CrossFitRewardModel(template, n_folds=2).fit_predict(s.contexts, a, r, 3)
    assert not hasattr(template, "coef_")


@pytest.mark.parametrize(
    "change, pattern",
    [
        (dict(n_arms=0), r"`n_arms` must be an integer >= 1; got 0"),
        (dict(actions=np.full(10, 3)), r"`actions` must be in \[0, 3\); row 0 has 3"),
        (dict(actions=np.zeros(10)), r"`actions` must be integer arm ids; got dtype float64"),
        (dict(rewards=np.r_[np.zeros(9), np.nan]), r"`rewards` must be finite; row 9 is not"),
        (dict(rewards=np.zeros(8)), r"`actions` and `rewards` must both have shape \(n,\); got \(10,\) and \(8,\)"),
        (dict(features=np.zeros((9, 2))), r"`features` must have shape \(n, d\) with n = 10 rows; got \(9, 2\)"),
        (dict(features=np.full((10, 2), np.nan)), r"`features` must be finite; found NaN or inf"),
    ],
)
def test_bad_input(change, pattern):
    args = dict(features=np.zeros((10, 2)), actions=np.zeros(10, dtype=int), rewards=np.zeros(10), n_arms=3)
    args.update(change)
    with pytest.raises(ValueError, match=pattern):
        CrossFitRewardModel(n_folds=2).fit_predict(**args)


def test_bad_settings():
    with pytest.raises(ValueError, match=r"`n_folds` must be an integer >= 2; got 1"):
        CrossFitRewardModel(n_folds=1).fit_predict(np.zeros((4, 1)), np.zeros(4, int), np.zeros(4), 2)
    with pytest.raises(ValueError, match=r"cross-fitting with 5 folds needs at least 5 rows; got 3"):
        CrossFitRewardModel(n_folds=5).fit_predict(np.zeros((3, 1)), np.zeros(3, int), np.zeros(3), 2)
