"""What every estimator shares: per-sample contributions -> ``Estimate`` (value, interval, diagnostics).

An estimator is a small frozen dataclass holding only its settings (after Open Bandit
Pipeline's ``obp.ope``, minus its dicts and ``**kwargs``). It implements one method,
``contributions(batch) -> float64 (n,)``, whose mean is the point estimate; the interval is
computed from the same vector (``estimators.intervals``). Self-normalised estimators return
their delta-method linearisation, which has the estimate as its exact mean and the right
first-order variance, so one code path serves them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from .batch import LoggedBatch
from .diagnostics import Diagnostics, diagnose
from .intervals import AUTO_RANGE, CI_METHODS, bootstrap_interval, clip_interval, normal_interval, resolve_reward_range

DEFAULT_N_BOOTSTRAP = 200


@dataclass(frozen=True)
class Estimate:
    """One estimator's estimate of a target policy's value on one logged batch.

    ``value`` is the point estimate, ``[ci_low, ci_high]`` the ``level`` interval by ``ci``
    ('normal' or 'bootstrap'), ``std_err`` its standard error, ``n`` the number of rows.
    ``reward_range`` is the (low, high) the interval was clipped to (None: not clipped), and
    ``ci_low_unclipped`` / ``ci_high_unclipped`` its ends before (None when not clipped);
    ``clipped`` says whether clipping moved an end.
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    std_err: float
    n: int
    ci: str
    level: float
    diagnostics: Diagnostics
    reward_range: tuple[float, float] | None = None
    ci_low_unclipped: float | None = None
    ci_high_unclipped: float | None = None

    @property
    def clipped(self) -> bool:
        """Whether clipping to ``reward_range`` moved either end of the interval."""
        return self.reward_range is not None and (self.ci_low != self.ci_low_unclipped or self.ci_high != self.ci_high_unclipped)

    def to_json(self) -> dict:
        return {
            **{k: getattr(self, k) for k in ("estimator", "value", "ci_low", "ci_high", "std_err", "n", "ci", "level")},
            "reward_range": list(self.reward_range) if self.reward_range is not None else None,
            "clipped": self.clipped,
            "ci_low_unclipped": self.ci_low_unclipped,
            "ci_high_unclipped": self.ci_high_unclipped,
            "diagnostics": self.diagnostics.to_json(),
        }

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies inside the interval."""
        return bool(self.ci_low <= value <= self.ci_high)


@runtime_checkable
class Estimator(Protocol):
    """An off-policy estimator: settings only, plus the two methods below."""

    name: ClassVar[str]
    needs_reward_model: ClassVar[bool]

    def contributions(self, batch: LoggedBatch) -> np.ndarray:
        """float64 (n,) per-sample contributions; their mean is the estimate."""
        ...

    def estimate(
        self,
        batch: LoggedBatch,
        *,
        ci: str = "normal",
        level: float = 0.95,
        n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
        rng: np.random.Generator | None = None,
        warn: bool = True,
        arm_names: tuple[str, ...] | None = None,
        reward_range: tuple[float, float] | str | None = AUTO_RANGE,
    ) -> Estimate: ...


class EstimatorBase:
    """Mixin giving a frozen settings dataclass the ``estimate`` method from ``contributions``."""

    name: ClassVar[str] = ""
    needs_reward_model: ClassVar[bool] = False

    def contributions(self, batch: LoggedBatch) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def settings(self) -> dict:
        """The estimator's settings as a plain dict (for reports)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def _reward_hat(self, batch: LoggedBatch) -> np.ndarray:
        if batch.reward_hat is None:
            raise ValueError(
                f"estimator {self.name!r} needs reward-model predictions: the batch has no `reward_hat` "
                "(fit one with estimators.CrossFitRewardModel and pass LoggedBatch(..., reward_hat=...))"
            )
        return batch.reward_hat

    def estimate(
        self,
        batch: LoggedBatch,
        *,
        ci: str = "normal",
        level: float = 0.95,
        n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
        rng: np.random.Generator | None = None,
        warn: bool = True,
        arm_names: tuple[str, ...] | None = None,
        reward_range: tuple[float, float] | str | None = AUTO_RANGE,
        **unknown: Any,
    ) -> Estimate:
        """The estimate of the target policy's value on ``batch`` with a ``level`` interval.

        ``ci`` is 'normal' or 'bootstrap' (the latter needs ``rng``). With ``warn``, support and
        effective-sample-size problems are reported as warnings (``estimators.diagnostics``).

        ``reward_range`` clips the interval to the rewards' bounds, as ``bandit-log evaluate
        --reward-range`` does, with the same default: ``"auto"`` clips to (0, 1) when every logged
        reward is 0 or 1 and leaves other intervals alone; ``(low, high)`` clips to those bounds
        (a logged reward outside them is an error); ``None`` never clips
        (``estimators.intervals.resolve_reward_range``). The point estimate is never changed, and
        the returned ``Estimate`` records the bounds and the unclipped ends.
        """
        if unknown:
            obp = sorted(set(unknown) & (set(LoggedBatch.OBP_NAMES) | {"position", "alpha", "n_bootstrap_samples", "random_state"}))
            hint = (f"; {', '.join(obp)} {'is' if len(obp) == 1 else 'are'} Open Bandit Pipeline's: build the batch with "
                    f"LoggedBatch.from_obp(...), or call estimate_policy_value(...) / estimate_interval(...) with OBP's "
                    f"arguments") if obp else ""
            raise TypeError(f"estimate() got unknown argument(s) {', '.join(sorted(unknown))}{hint}")
        if not isinstance(batch, LoggedBatch):
            raise TypeError(f"estimate() takes a LoggedBatch; got {type(batch).__name__}")
        if ci not in CI_METHODS:
            raise ValueError(f"`ci` must be one of {', '.join(CI_METHODS)}; got {ci!r}")
        bounds = resolve_reward_range(batch.rewards, reward_range)
        diag = diagnose(batch, warn=warn, arm_names=arm_names)
        c = self.contributions(batch)
        value = float(c.mean())
        if ci == "normal":
            interval = normal_interval(c, level)
        else:
            interval = bootstrap_interval(c, level, n_bootstrap, rng)
        if not math.isfinite(value):  # pragma: no cover - guarded by batch validation
            raise ValueError(f"estimator {self.name!r} produced a non-finite estimate ({value})")
        if bounds is None:
            return Estimate(self.name, value, interval.low, interval.high, interval.std_err, batch.n, ci, float(level), diag)
        low, high = clip_interval(interval.low, interval.high, bounds)
        return Estimate(self.name, value, low, high, interval.std_err, batch.n, ci, float(level), diag, bounds, interval.low, interval.high)


    # -- Open Bandit Pipeline's interface, for code ported from it -----------------------------
    def estimate_policy_value(self, *, reward, action, pscore=None, action_dist, estimated_rewards_by_reg_model=None,
                              position=None, **unknown) -> float:
        """OBP's ``estimate_policy_value``: the estimate from OBP's arrays and names (``LoggedBatch.from_obp``).

        ``pscore`` is required here (DM ignores it in OBP; pass the logging propensities anyway)."""
        return float(self.contributions(_obp_batch(self, reward, action, pscore, action_dist, estimated_rewards_by_reg_model,
                                                   position, unknown)).mean())

    def estimate_interval(self, *, reward, action, pscore=None, action_dist, estimated_rewards_by_reg_model=None,
                          position=None, alpha: float = 0.05, n_bootstrap_samples: int = 10000,
                          random_state: int | None = None, **unknown) -> dict[str, float]:
        """OBP's ``estimate_interval``: a bootstrap interval at level ``1 - alpha``, returned under OBP's keys
        (``mean``, ``95.0% CI (lower)``, ``95.0% CI (upper)``); unclipped, as OBP's."""
        batch = _obp_batch(self, reward, action, pscore, action_dist, estimated_rewards_by_reg_model, position, unknown)
        est = self.estimate(batch, ci="bootstrap", level=1 - alpha, n_bootstrap=n_bootstrap_samples,
                            rng=np.random.default_rng(random_state), reward_range=None)  # OBP's interval is never clipped
        pct = f"{100 * (1 - alpha)}%"
        return {"mean": est.value, f"{pct} CI (lower)": est.ci_low, f"{pct} CI (upper)": est.ci_high}


def _obp_batch(est: EstimatorBase, reward, action, pscore, action_dist, reward_hat, position, unknown) -> LoggedBatch:
    if unknown:
        raise TypeError(f"{type(est).__name__}: unknown argument(s) {', '.join(sorted(unknown))}; OBP's interface takes "
                        f"reward, action, pscore, action_dist, estimated_rewards_by_reg_model, position")
    if pscore is None:
        raise TypeError(f"{type(est).__name__}: pass pscore (the logging policy's propensities); this project's batches "
                        f"always carry them, DM included")
    return LoggedBatch.from_obp(action=action, reward=reward, pscore=pscore, action_dist=action_dist,
                                estimated_rewards_by_reg_model=reward_hat, position=position)


def dm_term(batch: LoggedBatch, reward_hat: np.ndarray) -> np.ndarray:
    """float64 (n,): sum over arms of target_probs * reward_hat, row by row."""
    if reward_hat is batch.reward_hat:
        return batch.dm_values  # computed once per batch, shared by DM and the DR family
    return np.einsum("ij,ij->i", batch.target_probs, reward_hat)


class UndefinedEstimateError(ValueError):
    """The estimator has no value on this batch (e.g. self-normalised with every weight 0)."""


def self_normalised(terms: np.ndarray, weights: np.ndarray, what: str) -> np.ndarray:
    """Linearised contributions of ``sum(terms) / sum(weights)`` (both float64 (n,)).

    Returns ``V + (terms - V * weights) / mean(weights)`` where ``V`` is the ratio: its mean is
    exactly ``V`` and its variance / n is the delta-method variance of the ratio.
    """
    w_bar = float(weights.mean())
    if w_bar <= 0:
        raise UndefinedEstimateError(
            f"{what} is undefined on this batch: the target policy gives probability 0 to every logged action "
            "(all importance weights are 0)"
        )
    v = float(terms.sum() / weights.sum())
    return v + (terms - v * weights) / w_bar
