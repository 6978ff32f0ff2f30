"""Choose the policy to deploy, so that the choice never loses to a fixed arm beyond noise.

The rule (one for the quickstart, the benchmark and ``bandit-log compare``):

1. Candidates: every learned policy, every fixed arm (``fixed:ARM``) and ``uniform``. Policies
   that look at outcomes in hindsight (``oracle``) are references, never candidates.
2. Each candidate gets a value per validation prompt:

   - on a *full-information* log (the ``outcomes`` table: every arm's reward for every prompt)
     the value is exact: ``sum_a pi(a | x_i) * r(x_i, a)``, the reward of the arms the policy
     chooses, in expectation over its probabilities (``select_exact``);
   - on a *bandit-feedback* log (the ``decisions`` table: one logged arm per prompt) it is an
     off-policy estimator's per-row contribution (doubly robust by default), whose mean is the
     estimate (``select_off_policy``); the selection then says so and shows those intervals.

3. The best fixed arm is the fixed arm with the highest mean value.
4. Every other candidate is compared with it *paired* (per-prompt differences, so the noise that
   both share cancels): a normal interval of the mean difference at a Bonferroni-adjusted level
   (``1 - (1 - level) / m`` for ``m`` non-fixed candidates, since the best of ``m`` is taken).
5. A non-fixed candidate is chosen only when its interval lies above zero; among those, the one
   with the highest mean value. Otherwise the best fixed arm is chosen.

So a learned policy is deployed only when it beats always using the best single arm beyond the
noise of the validation split, and the user is told why (``Selection.reason``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from estimators.intervals import normal_interval

#: policies that use outcomes in hindsight: shown as references, never selected
HINDSIGHT = ("oracle",)


def candidate_kind(name: str) -> str:
    """``fixed`` (``fixed:ARM``), ``uniform``, ``hindsight`` (``oracle``) or ``learned``."""
    if name.startswith("fixed:"):
        return "fixed"
    if name == "uniform":
        return "uniform"
    if name in HINDSIGHT:
        return "hindsight"
    return "learned"


@dataclass(frozen=True)
class Candidate:
    """One candidate's validation value and its paired difference from the best fixed arm.

    ``value``: mean per-prompt value; ``std_err``: its standard error; ``diff``: ``value`` minus
    the best fixed arm's value; ``[diff_low, diff_high]``: the paired interval of ``diff`` at
    the selection's adjusted level (NaN for fixed arms, which are not tested).
    """

    name: str
    kind: str
    value: float
    std_err: float
    diff: float
    diff_low: float
    diff_high: float

    @property
    def beats_best_fixed(self) -> bool:
        return bool(self.diff_low > 0)


@dataclass(frozen=True)
class Selection:
    """What the rule chose and why. ``method``: ``exact`` (full information) or ``off-policy:EST``."""

    chosen: str
    best_fixed: str
    method: str
    level: float
    adjusted_level: float
    n: int
    candidates: tuple[Candidate, ...]
    reason: str

    def candidate(self, name: str) -> Candidate:
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(f"no candidate named {name!r}; candidates: {', '.join(c.name for c in self.candidates)}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["candidates"] = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(c).items()}
                           for c in self.candidates]
        return d

    def table(self) -> str:
        """The candidates as text lines, best value first, the chosen one marked."""
        lines = [f"selection ({self.method}, {self.n} validation prompts, paired {100 * self.adjusted_level:.2f}% "
                 f"intervals against {self.best_fixed}):"]
        width = max(len(c.name) for c in self.candidates)
        for c in sorted(self.candidates, key=lambda c: -c.value):
            mark = "*" if c.name == self.chosen else " "
            diff = ("" if c.kind == "fixed" else
                    f"  diff {c.diff:+.4f} [{c.diff_low:+.4f}, {c.diff_high:+.4f}]")
            lines.append(f" {mark} {c.name.ljust(width)}  {c.value:.4f} ± {c.std_err:.4f}{diff}")
        lines.append(f"chose {self.chosen}: {self.reason}")
        return "\n".join(lines)


def _check_rows(per_row: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    rows = {str(k): np.asarray(v, dtype=np.float64) for k, v in per_row.items() if candidate_kind(str(k)) != "hindsight"}
    if not rows:
        raise ValueError("no deployable candidate to select from (only hindsight references such as the oracle were given)")
    shapes = {v.shape for v in rows.values()}
    if len(shapes) != 1 or next(iter(shapes))[0:1] == (0,) or len(next(iter(shapes))) != 1:
        raise ValueError(f"every candidate needs one value per validation prompt, float (n,) with n >= 1; got shapes "
                         f"{ {k: v.shape for k, v in rows.items()} }")
    bad = [k for k, v in rows.items() if not np.isfinite(v).all()]
    if bad:
        raise ValueError(f"candidate values must be finite; {', '.join(bad)} have NaN or inf (first row "
                         f"{int(np.flatnonzero(~np.isfinite(rows[bad[0]]))[0])})")
    if not any(candidate_kind(k) == "fixed" for k in rows):
        raise ValueError(f"the selection needs the fixed arms among the candidates (fixed:ARM); got {', '.join(rows)}")
    return rows


def select_from_rows(per_row: Mapping[str, np.ndarray], method: str = "exact", level: float = 0.95) -> Selection:
    """The rule of the module docstring on per-prompt values: candidate name -> float64 (n,)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")
    rows = _check_rows(per_row)
    n = len(next(iter(rows.values())))
    fixed = [k for k in rows if candidate_kind(k) == "fixed"]
    best_fixed = max(fixed, key=lambda k: rows[k].mean())  # the first of equals
    others = [k for k in rows if candidate_kind(k) != "fixed"]
    adjusted = 1 - (1 - level) / max(len(others), 1)
    base = rows[best_fixed]
    candidates = []
    for name, v in rows.items():
        se = normal_interval(v, level).std_err
        if candidate_kind(name) == "fixed":
            diff, lo, hi = float(v.mean() - base.mean()), math.nan, math.nan
        else:
            d = paired_difference(v, base, adjusted)
            diff, lo, hi = d.diff, d.low, d.high
        candidates.append(Candidate(name, candidate_kind(name), float(v.mean()), se, diff, lo, hi))
    winners = [c for c in candidates if c.kind != "fixed" and c.beats_best_fixed]
    if winners:
        best = max(winners, key=lambda c: (c.value, c.diff_low))
        runner = [c.name for c in winners if c.name != best.name]
        reason = (f"its value {best.value:.4f} beats the best fixed arm {best_fixed} ({rows[best_fixed].mean():.4f}) by "
                  f"{best.diff:+.4f}, paired interval [{best.diff_low:+.4f}, {best.diff_high:+.4f}] above zero"
                  + (f"; also above zero: {', '.join(runner)}" if runner else ""))
        chosen = best.name
    else:
        top = max((c for c in candidates if c.kind != "fixed"), key=lambda c: c.value, default=None)
        chosen = best_fixed
        if top is None:
            reason = f"only fixed arms were candidates; {best_fixed} has the highest value ({rows[best_fixed].mean():.4f})"
        elif n < 2:
            reason = f"one validation prompt cannot show any policy beats {best_fixed}; the best fixed arm is kept"
        else:
            reason = (f"no learned policy beats {best_fixed} ({rows[best_fixed].mean():.4f}) beyond noise; the best, "
                      f"{top.name} ({top.value:.4f}, {top.diff:+.4f}), has a paired interval "
                      f"[{top.diff_low:+.4f}, {top.diff_high:+.4f}] that reaches zero")
    return Selection(chosen=chosen, best_fixed=best_fixed, method=method, level=level, adjusted_level=adjusted, n=n,
                     candidates=tuple(candidates), reason=reason)


def exact_values(probs: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """float64 (n,): ``sum_a probs[i, a] * rewards[i, a]`` (probs and rewards float (n, n_arms))."""
    p, r = np.asarray(probs, dtype=np.float64), np.asarray(rewards, dtype=np.float64)
    if p.shape != r.shape or p.ndim != 2:
        raise ValueError(f"probabilities and rewards must both be (n, n_arms); got {p.shape} and {r.shape}")
    return (p * r).sum(axis=1)


def select_exact(probs: Mapping[str, np.ndarray], rewards: np.ndarray, level: float = 0.95) -> Selection:
    """Select on a full-information validation split: ``probs`` name -> (n, n_arms) probabilities of
    each candidate on the validation prompts, ``rewards`` (n, n_arms) every arm's reward there."""
    return select_from_rows({k: exact_values(v, rewards) for k, v in probs.items()}, "exact", level)


def select_off_policy(contributions: Mapping[str, np.ndarray], estimator: str = "dr", level: float = 0.95) -> Selection:
    """Select on a bandit-feedback log: ``contributions`` name -> the estimator's per-row
    contributions float64 (n,) on the same logged decisions (their mean is the estimate)."""
    return select_from_rows(contributions, f"off-policy:{estimator}", level)


@dataclass(frozen=True)
class PairedDifference:
    """``mean(a - b)`` over paired prompts with its normal interval at ``level``."""

    diff: float
    low: float
    high: float
    level: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> PairedDifference:
    """Paired interval of the mean per-prompt difference ``a - b`` (float (n,) each, same prompts)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired values must be two float (n,) arrays of the same prompts, n >= 1; got {a.shape} and {b.shape}")
    iv = normal_interval(a - b, level)
    return PairedDifference(float((a - b).mean()), iv.low, iv.high, level, a.size)
