"""Diagnostics of an off-policy comparison: how much the logged data says about the target.

- effective sample size ``(sum w)^2 / sum w^2`` of the importance weights (n when the target is
  the logging policy; small when a few rows carry all the weight);
- the largest weight;
- arms the target policy gives probability to but the logging policy never chose in the
  batch: nothing in the log says what those arms earn, so weighting estimators are blind to
  them and model-based ones extrapolate;
- the mean weight (SNIPS's normaliser; IPS = SNIPS x mean weight when neither clips), 1 in
  expectation when the propensities are right and the logger can take every arm the target
  takes: ``normaliser_gap`` says when it is clearly not 1 (further than ``NORMALISER_Z`` standard
  errors *and* ``NORMALISER_TOLERANCE`` relative), which is when IPS and SNIPS part.

Problems are reported as warnings (``SupportWarning``, ``LowEffectiveSampleSizeWarning``), not
errors: the numbers can still be computed, and the caller decides.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

import numpy as np

from .batch import LoggedBatch

# Warn when fewer than this share of the rows effectively carry the estimate.
LOW_ESS_FRACTION = 0.10
#: the mean weight is reported when further from 1 than this many standard errors ...
NORMALISER_Z = 4.0
#: ... and than this relative gap (a factor 1.1 either way)
NORMALISER_TOLERANCE = 0.1


class SupportWarning(UserWarning):
    """The target policy uses arms that the logging policy never chose in the batch."""


class LowEffectiveSampleSizeWarning(UserWarning):
    """The importance weights concentrate on a few rows."""


@dataclass(frozen=True)
class Diagnostics:
    """Weight and support diagnostics of one (logged batch, target policy) pair.

    ``unsupported_arms`` are column indices; ``unsupported_mass`` is the target's average
    probability on them (the share of the target's behaviour the log cannot check).
    """

    n: int
    effective_sample_size: float
    max_weight: float
    mean_weight: float
    unsupported_arms: tuple[int, ...]
    unsupported_mass: float

    def to_json(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "unsupported_arms": list(self.unsupported_arms)}


def effective_sample_size(weights: np.ndarray) -> float:
    """``(sum w)^2 / sum w^2`` of float (n,) weights; 0 when every weight is 0."""
    w = np.asarray(weights, dtype=np.float64)
    s2 = float(np.dot(w, w))
    return 0.0 if s2 == 0 else float(w.sum()) ** 2 / s2


def normaliser_gap(weights: np.ndarray) -> tuple[float, float] | None:
    """(mean, standard error) of float (n,) importance weights when the mean is clearly not 1 (see
    the module docstring), else None. All-zero weights give None: the support warning says more."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size < 2 or not w.any():
        return None
    mean = float(w.mean())
    se = float(w.std(ddof=1)) / np.sqrt(w.size)
    off = not 1 / (1 + NORMALISER_TOLERANCE) <= mean <= 1 + NORMALISER_TOLERANCE
    return (mean, se) if off and abs(mean - 1) > NORMALISER_Z * se else None


def diagnose(batch: LoggedBatch, warn: bool = True, arm_names: tuple[str, ...] | None = None) -> Diagnostics:
    """Diagnostics of ``batch``; with ``warn`` emit a warning for each problem found.

    ``arm_names`` (optional, length n_arms) only makes the warning messages readable.
    """
    total, squares, max_w, mean_w = batch.weight_stats
    unsupported, mass = batch.unsupported
    diag = Diagnostics(
        n=batch.n,
        effective_sample_size=0.0 if squares == 0 else total ** 2 / squares,
        max_weight=max_w,
        mean_weight=mean_w,
        unsupported_arms=unsupported,
        unsupported_mass=mass,
    )
    if warn:
        _warn(diag, arm_names)
    return diag


def _warn(diag: Diagnostics, arm_names: tuple[str, ...] | None) -> None:
    if diag.unsupported_arms:
        names = [arm_names[a] if arm_names else str(a) for a in diag.unsupported_arms]
        warnings.warn(
            f"the target policy puts {diag.unsupported_mass:.1%} of its probability on arm(s) "
            f"{', '.join(names)} that the logging policy never chose in these {diag.n} rows; "
            "weighting estimators cannot see those arms and model-based ones extrapolate",
            SupportWarning,
            stacklevel=3,
        )
    if diag.effective_sample_size < LOW_ESS_FRACTION * diag.n:
        warnings.warn(
            f"effective sample size is {diag.effective_sample_size:.1f} of {diag.n} rows "
            f"(max weight {diag.max_weight:.3g}); the estimate rests on a few rows",
            LowEffectiveSampleSizeWarning,
            stacklevel=3,
        )
