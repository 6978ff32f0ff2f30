"""The direct method (DM): the reward model's prediction averaged under the target policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import EstimatorBase, dm_term
from .batch import LoggedBatch


@dataclass(frozen=True)
class DM(EstimatorBase):
    """``V = mean_i sum_a target_probs[i, a] * reward_hat[i, a]``.

    Low variance, no weights; biased wherever the reward model is wrong. Needs ``reward_hat``.
    Its interval (normal or bootstrap over rows) covers only how the predictions vary across rows,
    not the reward model's own error: it understates DM's uncertainty. Reports say so.
    """

    name: ClassVar[str] = "dm"
    needs_reward_model: ClassVar[bool] = True

    def contributions(self, batch: LoggedBatch) -> np.ndarray:
        """float64 (n,): ``sum_a target_probs[i, a] * reward_hat[i, a]``."""
        return dm_term(batch, self._reward_hat(batch))
