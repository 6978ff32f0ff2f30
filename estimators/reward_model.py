"""Reward models for DM and the doubly robust family, cross-fitted so predictions are out-of-fold.

``CrossFitRewardModel(regressor, n_folds, seed).fit_predict(features, actions, rewards, n_arms)``
splits the rows into K folds; for each fold and each arm it fits a clone of the scikit-learn
regressor on the other folds' rows that chose that arm, and predicts that arm's reward for the
fold's rows. Every prediction for row i therefore comes from models that never saw row i, which
keeps DR's correction term unbiased given the model (cross-fitting, as in double machine
learning). An arm with fewer than ``min_rows_per_arm`` training rows in a fold falls back to the
mean reward of all training rows of that fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def _default_regressor() -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1.0)


@dataclass(frozen=True)
class CrossFitRewardModel:
    """Settings of a cross-fitted per-arm reward model.

    - ``regressor``: an unfitted scikit-learn regressor used as a template (cloned per fold and
      arm; never fitted itself); None means ``Ridge(alpha=1.0)``.
    - ``n_folds``: K >= 2 folds.
    - ``seed``: seeds the random fold assignment.
    - ``min_rows_per_arm``: below this many training rows for an arm, predict the fold's mean.
    """

    regressor: Any = None
    n_folds: int = 5
    seed: int = 0
    min_rows_per_arm: int = 2

    def fit_predict(self, features: Any, actions: np.ndarray, rewards: np.ndarray, n_arms: int) -> np.ndarray:
        """Out-of-fold predictions ``reward_hat`` float64 (n, n_arms).

        ``features``: float (n, d), dense or scipy sparse; ``actions``: int (n,) in [0, n_arms);
        ``rewards``: float (n,), finite.
        """
        from sklearn.base import clone

        x, a, r = self._check(features, actions, rewards, n_arms)
        n = a.shape[0]
        template = _default_regressor() if self.regressor is None else self.regressor
        folds = np.random.default_rng(self.seed).permutation(n) % self.n_folds
        out = np.empty((n, n_arms), dtype=np.float64)
        for k in range(self.n_folds):
            test = folds == k
            train = ~test
            if not test.any():
                continue
            fallback = float(r[train].mean())
            x_test = x[np.flatnonzero(test)]
            for arm in range(n_arms):
                rows = np.flatnonzero(train & (a == arm))
                if rows.size < self.min_rows_per_arm:
                    out[test, arm] = fallback
                    continue
                model = clone(template).fit(x[rows], r[rows])
                out[test, arm] = np.asarray(model.predict(x_test), dtype=np.float64).reshape(-1)
        if not np.isfinite(out).all():
            raise ValueError("the reward model predicted NaN or inf; check the features and the regressor")
        return out

    def _check(self, features: Any, actions: np.ndarray, rewards: np.ndarray, n_arms: int) -> tuple[Any, np.ndarray, np.ndarray]:
        if not (isinstance(self.n_folds, int) and self.n_folds >= 2):
            raise ValueError(f"CrossFitRewardModel: `n_folds` must be an integer >= 2; got {self.n_folds!r}")
        if not (isinstance(n_arms, (int, np.integer)) and n_arms >= 1):
            raise ValueError(f"`n_arms` must be an integer >= 1; got {n_arms!r}")
        a = np.asarray(actions)
        r = np.asarray(rewards, dtype=np.float64)
        if a.ndim != 1 or r.shape != a.shape:
            raise ValueError(f"`actions` and `rewards` must both have shape (n,); got {a.shape} and {r.shape}")
        if a.dtype.kind not in "iu":
            raise ValueError(f"`actions` must be integer arm ids; got dtype {a.dtype}")
        x = features if hasattr(features, "tocsr") else np.asarray(features, dtype=np.float64)
        if hasattr(x, "tocsr"):
            x = x.tocsr()
        if x.ndim != 2 or x.shape[0] != a.shape[0]:
            raise ValueError(f"`features` must have shape (n, d) with n = {a.shape[0]} rows; got {x.shape}")
        if a.shape[0] < self.n_folds:
            raise ValueError(f"cross-fitting with {self.n_folds} folds needs at least {self.n_folds} rows; got {a.shape[0]}")
        bad = (a < 0) | (a >= n_arms)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"`actions` must be in [0, {n_arms}); row {i} has {a[i]}")
        if not np.isfinite(r).all():
            raise ValueError(f"`rewards` must be finite; row {int(np.flatnonzero(~np.isfinite(r))[0])} is not")
        dense = x.data if hasattr(x, "data") and hasattr(x, "tocsr") else x
        if not np.isfinite(dense).all():
            raise ValueError("`features` must be finite; found NaN or inf")
        return x, a.astype(np.int64), r
