"""Importance weighting: IPS (optionally clipped) and self-normalised IPS (SNIPS).

The weight of row i is ``w_i = target_probs[i, actions[i]] / propensities[i]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import EstimatorBase, self_normalised
from .batch import LoggedBatch


def check_positive(owner: str, name: str, value: float, allow_inf: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and (allow_inf or math.isfinite(value))
    if not ok or math.isnan(value):
        raise ValueError(f"{owner}: `{name}` must be a number > 0{'' if allow_inf else ' and finite'}; got {value!r}")


@dataclass(frozen=True)
class IPS(EstimatorBase):
    """Inverse propensity scoring: ``V = mean_i min(w_i, clip) * rewards[i]``.

    ``clip`` (> 0, default inf: no clipping) caps each weight; clipping trades variance for a
    downward bias on the clipped rows' share of the value.
    """

    clip: float = math.inf

    name: ClassVar[str] = "ips"
    needs_reward_model: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_positive("IPS", "clip", self.clip)

    def weights(self, batch: LoggedBatch) -> np.ndarray:
        """float64 (n,): the (clipped) importance weights."""
        w = batch.weights
        return np.minimum(w, self.clip) if math.isfinite(self.clip) else w

    def contributions(self, batch: LoggedBatch) -> np.ndarray:
        """float64 (n,): ``min(w_i, clip) * rewards[i]``."""
        return self.weights(batch) * batch.rewards


@dataclass(frozen=True)
class SNIPS(EstimatorBase):
    """Self-normalised IPS: ``V = sum_i w_i r_i / sum_i w_i``.

    A weighted average of the observed rewards, so it always lies within their range; slightly
    biased, often far less variable than IPS. Undefined (an error) when every weight is 0.
    """

    name: ClassVar[str] = "snips"
    needs_reward_model: ClassVar[bool] = False

    def contributions(self, batch: LoggedBatch) -> np.ndarray:
        """float64 (n,): delta-method linearisation ``V + w_i (r_i - V) / mean(w)``."""
        w = batch.weights
        return self_normalised(w * batch.rewards, w, "SNIPS")
