"""Confidence intervals for the mean of per-sample contributions.

Every estimator reduces to ``mean(c)`` of per-sample contributions ``c`` (float64 (n,); for the
self-normalised estimators ``c`` is the linearised, delta-method form whose mean is the
estimate). Both intervals work on ``c``:

- ``normal_interval``: ``mean ± z * std(c, ddof=1) / sqrt(n)``;
- ``bootstrap_interval``: percentile interval of the means of ``n_bootstrap`` resamples of the
  rows with replacement, drawn from an explicit ``numpy.random.Generator``. Resamples are drawn
  in blocks of int32 indices so memory stays bounded (about ``BLOCK_ELEMENTS`` indices at once)
  while each block is one vectorised gather and sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

CI_METHODS = ("normal", "bootstrap")
BLOCK_ELEMENTS = 1 << 23  # indices per block: 32 MiB of int32


@dataclass(frozen=True)
class Interval:
    """A two-sided interval for a mean, and the standard error behind it."""

    low: float
    high: float
    std_err: float


def _check_level(level: float) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"`level` must be in (0, 1), e.g. 0.95; got {level!r}")


def _check_contributions(contributions: np.ndarray) -> np.ndarray:
    c = np.asarray(contributions, dtype=np.float64)
    if c.ndim != 1 or c.shape[0] == 0:
        raise ValueError(f"contributions must have shape (n,) with n >= 1; got shape {c.shape}")
    return c


def normal_interval(contributions: np.ndarray, level: float = 0.95) -> Interval:
    """Normal-approximation interval of ``mean(contributions)`` (float64 (n,)).

    With one row the standard error is unknown: NaN, and so are the bounds.
    """
    _check_level(level)
    c = _check_contributions(contributions)
    n = c.shape[0]
    mean = float(c.mean())
    if n > 1:
        d = c - mean  # two passes (mean, then squared deviations): stable, and one BLAS dot
        se = math.sqrt(float(np.dot(d, d)) / (n - 1)) / math.sqrt(n)
    else:
        se = math.nan
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return Interval(mean - z * se, mean + z * se, se)


def bootstrap_means(contributions: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """float64 (n_bootstrap,): means of ``n_bootstrap`` resamples (with replacement) of the rows."""
    c = _check_contributions(contributions)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"`rng` must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)); got {type(rng).__name__}")
    if not (isinstance(n_bootstrap, (int, np.integer)) and n_bootstrap >= 2):
        raise ValueError(f"`n_bootstrap` must be an integer >= 2; got {n_bootstrap!r}")
    n = c.shape[0]
    means = np.empty(int(n_bootstrap), dtype=np.float64)
    dtype = np.int32 if n < 2**31 else np.int64
    per_block = max(1, BLOCK_ELEMENTS // n)
    for start in range(0, int(n_bootstrap), per_block):
        m = min(per_block, int(n_bootstrap) - start)
        idx = rng.integers(0, n, size=(m, n), dtype=dtype)
        means[start : start + m] = np.take(c, idx).sum(axis=1) / n
    return means


def bootstrap_interval(contributions: np.ndarray, level: float = 0.95, n_bootstrap: int = 200, rng: np.random.Generator | None = None) -> Interval:
    """Percentile bootstrap interval of ``mean(contributions)``; ``std_err`` is the bootstrap std.

    ``rng`` is required (explicit randomness): pass ``numpy.random.default_rng(seed)``.
    """
    _check_level(level)
    if rng is None:
        raise TypeError("bootstrap intervals need an explicit `rng` (numpy.random.Generator), e.g. numpy.random.default_rng(0)")
    means = bootstrap_means(contributions, n_bootstrap, rng)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(low), float(high), float(means.std(ddof=1)))


# -- clipping to the rewards' bounds -------------------------------------------------------------
#: ``reward_range="auto"``: clip to (0, 1) when every logged reward is 0 or 1, else not at all
AUTO_RANGE = "auto"


def resolve_reward_range(rewards: np.ndarray, reward_range: tuple[float, float] | str | None = AUTO_RANGE) -> tuple[float, float] | None:
    """The bounds an interval is clipped to, from float (n,) logged ``rewards`` and the option.

    - ``"auto"`` (the default of ``estimate()``, ``bandit.report.evaluate_policies`` and
      ``bandit-log evaluate --reward-range``): (0, 1) when every reward is 0 or 1 (clicks,
      successes: a policy's value lies in [0, 1]), else None;
    - ``None``: None (never clip);
    - ``(low, high)``: bounds every reward obeys (low < high); a logged reward outside is an error.

    Clipping never lowers coverage: the policy's value lies within the bounds, so intersecting an
    interval with them only removes values it cannot take.
    """
    if reward_range is None:
        return None
    r = np.asarray(rewards, dtype=np.float64)
    if isinstance(reward_range, str):
        if reward_range != AUTO_RANGE:
            raise ValueError(f"reward_range must be 'auto', None or (low, high); got {reward_range!r}")
        return (0.0, 1.0) if r.size and np.isin(r, (0.0, 1.0)).all() else None
    try:
        lo, hi = (float(v) for v in reward_range)
    except (TypeError, ValueError):
        raise ValueError(f"reward_range must be 'auto', None or (low, high); got {reward_range!r}") from None
    if not lo < hi:
        raise ValueError(f"reward_range must be (low, high) with low < high; got {reward_range!r}")
    outside = (r < lo) | (r > hi)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(f"reward_range ({lo:g}, {hi:g}): {int(outside.sum())} logged reward(s) lie outside it "
                         f"(first: row {i}, {float(r[i])!r})")
    return (lo, hi)


def clip_interval(low: float, high: float, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """``[low, high]`` intersected with ``bounds`` (unchanged when None or not finite)."""
    if bounds is None or not (math.isfinite(low) and math.isfinite(high)):
        return low, high
    lo, hi = bounds
    return min(max(low, lo), hi), max(min(high, hi), lo)
