"""Doubly robust estimators: the direct method plus an importance-weighted correction.

With ``dm_i = sum_a target_probs[i, a] * reward_hat[i, a]`` and the residual of the logged
action ``e_i = rewards[i] - reward_hat[i, actions[i]]``:

- DR:        ``dm_i + w_i e_i`` (unbiased when propensities are exact, whatever the model);
- SNDR:      ``mean(dm) + sum(w e) / sum(w)``, the correction self-normalised;
- Switch-DR: ``dm_i + 1[w_i <= tau] w_i e_i`` (rows with huge weights trust the model alone;
  the variant of Open Bandit Pipeline, which needs only the logged action's propensity);
- DRos:      ``dm_i + w_i lam / (w_i^2 + lam) e_i`` (Su et al. 2020, optimistic shrinkage of the
  weights towards 0; lam -> inf gives DR, lam -> 0 gives DM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import EstimatorBase, dm_term, self_normalised
from .batch import LoggedBatch
from .weighting import check_positive


class _DoublyRobust(EstimatorBase):
    """The DR family: ``dm_i + v_i e_i`` where ``v_i`` (``correction_weights``) is the importance
    weight as each variant treats it. Needs ``reward_hat``."""

    needs_reward_model: ClassVar[bool] = True

    def correction_weights(self, batch: LoggedBatch) -> np.ndarray:
        """float64 (n,): the weight of each row's residual (DR: the importance weight itself)."""
        return batch.weights

    def contributions(self, batch: LoggedBatch) -> np.ndarray:
        return dm_term(batch, self._reward_hat(batch)) + self.correction_weights(batch) * batch.residuals


@dataclass(frozen=True)
class DR(_DoublyRobust):
    """Doubly robust: ``V = mean_i dm_i + w_i (r_i - reward_hat[i, a_i])``. Needs ``reward_hat``."""

    name: ClassVar[str] = "dr"


@dataclass(frozen=True)
class SNDR(_DoublyRobust):
    """Self-normalised DR: ``V = mean(dm) + sum_i w_i e_i / sum_i w_i``. Needs ``reward_hat``."""

    name: ClassVar[str] = "sndr"

    def contributions(self, batch: LoggedBatch) -> np.ndarray:
        """float64 (n,): ``dm_i`` plus the linearised self-normalised correction."""
        w = batch.weights
        return dm_term(batch, self._reward_hat(batch)) + self_normalised(w * batch.residuals, w, "SNDR")


@dataclass(frozen=True)
class SwitchDR(_DoublyRobust):
    """Switch-DR: DR on rows with ``w_i <= tau``, the direct method alone above it.

    ``tau`` (> 0, default inf: plain DR) is the weight threshold. Needs ``reward_hat``.
    """

    tau: float = math.inf

    name: ClassVar[str] = "switch-dr"

    def __post_init__(self) -> None:
        check_positive("SwitchDR", "tau", self.tau)

    def correction_weights(self, batch: LoggedBatch) -> np.ndarray:
        w = batch.weights
        return np.where(w <= self.tau, w, 0.0)


@dataclass(frozen=True)
class DRos(_DoublyRobust):
    """DR with optimistic shrinkage: weights ``w lam / (w^2 + lam)`` (Su et al. 2020).

    ``lam`` (> 0, default 100; inf gives plain DR) sets how hard large weights shrink: a weight
    of sqrt(lam) is halved. Needs ``reward_hat``.
    """

    lam: float = 100.0

    name: ClassVar[str] = "dros"

    def __post_init__(self) -> None:
        check_positive("DRos", "lam", self.lam)

    def shrunk_weights(self, batch: LoggedBatch) -> np.ndarray:
        """float64 (n,): the shrunk weights ``w lam / (w^2 + lam)``."""
        w = batch.weights
        if math.isinf(self.lam):
            return w
        return w * self.lam / (w * w + self.lam)

    correction_weights = shrunk_weights
