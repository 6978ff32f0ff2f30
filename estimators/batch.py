"""``LoggedBatch``: the typed input of every off-policy estimator (never a dict).

Row i is one logged decision: the logging policy chose arm ``actions[i]`` with the exact
probability ``propensities[i]`` and observed ``rewards[i]``; ``target_probs[i]`` is the
distribution the policy under evaluation would have used on the same context, and
``reward_hat[i]`` (optional) a reward model's prediction for every arm on that context.

Arrays are validated once, on construction, and stored as read-only float64/int64 copies (the
caller's arrays are never changed). Errors name the field, what was expected, and the first
offending row.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Rows of a probability matrix may differ from 1 by this much (float rounding of a softmax).
PROBS_ATOL = 1e-6


class BatchError(ValueError):
    """A ``LoggedBatch`` was given arrays that break its contract; the message says which."""


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _as_array(name: str, value: object, dtype: type, ndim: int) -> np.ndarray:
    try:
        arr = np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError) as exc:
        raise BatchError(f"`{name}` must be convertible to {np.dtype(dtype).name}; {exc}") from None
    if arr.ndim != ndim:
        shape = "(n,)" if ndim == 1 else "(n, n_arms)"
        raise BatchError(f"`{name}` must have shape {shape}; got shape {arr.shape}")
    return arr


def _check_finite(name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = bad if bad.ndim == 1 else bad.any(axis=1)
        i = _first(rows)
        raise BatchError(f"`{name}` must be finite; {int(rows.sum())} row(s) hold NaN or inf (first: row {i}, value {arr[i].tolist()!r})")


@dataclass(frozen=True, eq=False)
class LoggedBatch:
    """Logged bandit feedback plus the target policy's probabilities on the same rows.

    Fields (n rows, k arms; action ids are 0-based column indices):

    - ``actions``: int64 (n,), the arm the logging policy chose, in [0, k).
    - ``rewards``: float64 (n,), the reward observed for that arm; finite.
    - ``propensities``: float64 (n,), the logging policy's exact probability of that choice,
      in (0, 1]; never rounded.
    - ``target_probs``: float64 (n, k), the target policy's action distribution per row;
      entries in [0, 1], rows summing to 1 (within ``PROBS_ATOL``).
    - ``reward_hat``: float64 (n, k) or None, a reward model's predictions for every arm
      (out-of-fold, see ``estimators.reward_model``); finite.
    """

    actions: np.ndarray
    rewards: np.ndarray
    propensities: np.ndarray
    target_probs: np.ndarray
    reward_hat: np.ndarray | None = None

    def __post_init__(self) -> None:
        actions = self.actions
        if isinstance(actions, np.ndarray) and actions.dtype.kind == "f":
            if np.isnan(actions).any():
                raise BatchError(f"`actions` must be integer arm ids; row {_first(np.isnan(actions))} is NaN")
            if (actions != np.round(actions)).any():
                i = _first(actions != np.round(actions))
                raise BatchError(f"`actions` must be integer arm ids; row {i} holds {float(actions[i])!r}")
        a = _as_array("actions", actions, np.int64, 1)
        r = _as_array("rewards", self.rewards, np.float64, 1)
        p = _as_array("propensities", self.propensities, np.float64, 1)
        pi = _as_array("target_probs", self.target_probs, np.float64, 2)
        n = a.shape[0]
        if n == 0:
            raise BatchError("a LoggedBatch needs at least one row; got 0")
        for name, arr in (("rewards", r), ("propensities", p)):
            if arr.shape[0] != n:
                raise BatchError(f"`{name}` must have shape ({n},) like `actions`; got {arr.shape}")
        if pi.shape[0] != n:
            raise BatchError(f"`target_probs` must have {n} rows like `actions`; got shape {pi.shape}")
        k = pi.shape[1]
        if k == 0:
            raise BatchError("`target_probs` must have at least one arm column; got shape (n, 0)")
        bad = (a < 0) | (a >= k)
        if bad.any():
            i = _first(bad)
            raise BatchError(f"`actions` must be in [0, {k}) (target_probs has {k} arms); {int(bad.sum())} row(s) are not (first: row {i}, value {a[i]})")
        _check_finite("rewards", r)
        bad = ~((p > 0) & (p <= 1))  # also catches NaN
        if bad.any():
            i = _first(bad)
            raise BatchError(f"`propensities` must be in (0, 1]; {int(bad.sum())} row(s) are not (first: row {i}, value {float(p[i])!r})")
        _check_finite("target_probs", pi)
        bad = ((pi < 0) | (pi > 1)).any(axis=1)
        if bad.any():
            i = _first(bad)
            raise BatchError(f"`target_probs` entries must be in [0, 1]; {int(bad.sum())} row(s) are not (first: row {i}, {pi[i].tolist()})")
        sums = pi.sum(axis=1)
        bad = np.abs(sums - 1.0) > PROBS_ATOL
        if bad.any():
            i = _first(bad)
            raise BatchError(f"`target_probs` rows must sum to 1; {int(bad.sum())} row(s) do not (first: row {i}, sums to {float(sums[i])!r})")
        q = None
        if self.reward_hat is not None:
            q = _as_array("reward_hat", self.reward_hat, np.float64, 2)
            if q.shape != pi.shape:
                raise BatchError(f"`reward_hat` must have shape (n, n_arms) = {pi.shape} like `target_probs`; got {q.shape}")
            _check_finite("reward_hat", q)
        for arr in (a, r, p, pi, q):
            if arr is not None:
                arr.flags.writeable = False
        object.__setattr__(self, "actions", a)
        object.__setattr__(self, "rewards", r)
        object.__setattr__(self, "propensities", p)
        object.__setattr__(self, "target_probs", pi)
        object.__setattr__(self, "reward_hat", q)

    #: Open Bandit Pipeline's argument names -> this class's fields
    OBP_NAMES = {"action": "actions", "reward": "rewards", "pscore": "propensities", "action_dist": "target_probs",
                 "estimated_rewards_by_reg_model": "reward_hat"}

    @classmethod
    def from_obp(cls, *, action, reward, pscore, action_dist, estimated_rewards_by_reg_model=None, position=None,
                 **unknown) -> "LoggedBatch":
        """A batch from Open Bandit Pipeline's arrays and names (``action_dist`` and the reward model's
        predictions may be OBP's (n, n_actions, 1)). More than one ``position`` is refused: evaluate
        one position at a time. Other names raise ``TypeError`` naming this project's."""
        if unknown:
            raise TypeError(f"LoggedBatch.from_obp: unknown argument(s) {', '.join(sorted(unknown))}; it takes OBP's "
                            f"{', '.join(cls.OBP_NAMES)} and position")

        def squeeze(name, arr):
            arr = np.asarray(arr)
            if arr.ndim == 3:
                if arr.shape[2] != 1:
                    raise BatchError(f"`{name}` has {arr.shape[2]} positions (shape {arr.shape}); evaluate one position at a "
                                     f"time: pass {name}[:, :, k] with the rows of position k")
                arr = arr[:, :, 0]
            return arr

        n_positions = 1 if position is None else len(np.unique(np.asarray(position)))
        if n_positions > 1:
            raise BatchError(f"`position` holds {n_positions} positions; evaluate one position at a time")
        hat = None if estimated_rewards_by_reg_model is None else squeeze("estimated_rewards_by_reg_model", estimated_rewards_by_reg_model)
        return cls(actions=action, rewards=reward, propensities=pscore, target_probs=squeeze("action_dist", action_dist), reward_hat=hat)

    @property
    def n(self) -> int:
        return int(self.actions.shape[0])

    @property
    def n_arms(self) -> int:
        return int(self.target_probs.shape[1])

    @cached_property
    def target_prob_logged(self) -> np.ndarray:
        """float64 (n,): the target policy's probability of the logged action."""
        k = self.target_probs.shape[1]  # flat indices into the C-ordered (n, k) array: faster than 2-d fancy indexing
        out = np.take(np.ascontiguousarray(self.target_probs).ravel(), np.arange(self.n) * k + self.actions)
        out.flags.writeable = False
        return out

    @cached_property
    def weights(self) -> np.ndarray:
        """float64 (n,): importance weights target_probs[i, actions[i]] / propensities[i]."""
        out = self.target_prob_logged / self.propensities
        out.flags.writeable = False
        return out

    # Per-batch work that several estimators share. The batch is immutable (frozen, arrays
    # read-only), so each is computed once, by the first estimator that needs it.
    @cached_property
    def weight_stats(self) -> tuple[float, float, float, float]:
        """(sum w, sum w^2, max w, mean w) of the importance weights."""
        w = self.weights
        total = float(w.sum())
        return total, float(np.dot(w, w)), float(w.max()), total / self.n

    @cached_property
    def unsupported(self) -> tuple[tuple[int, ...], float]:
        """(arms the target gives probability but no row logged, the target's mean probability on them)."""
        chosen = np.bincount(self.actions, minlength=self.n_arms) > 0
        if chosen.all():  # the common case: no need to average the target's probabilities
            return (), 0.0
        never = np.flatnonzero(~chosen)
        mass = self.target_probs[:, never].mean(axis=0)
        arms = tuple(int(a) for a, m in zip(never, mass) if m > 0)
        return arms, float(mass[mass > 0].sum())

    @cached_property
    def dm_values(self) -> np.ndarray:
        """float64 (n,): sum over arms of target_probs * reward_hat per row (needs ``reward_hat``)."""
        if self.reward_hat is None:
            raise ValueError("dm_values needs reward_hat")
        out = np.einsum("ij,ij->i", self.target_probs, self.reward_hat)
        out.flags.writeable = False
        return out

    @cached_property
    def residuals(self) -> np.ndarray:
        """float64 (n,): rewards - reward_hat[i, actions[i]] (needs ``reward_hat``)."""
        if self.reward_hat is None:
            raise ValueError("residuals needs reward_hat")
        out = self.rewards - self.reward_hat[np.arange(self.n), self.actions]
        out.flags.writeable = False
        return out

    def with_reward_hat(self, reward_hat: np.ndarray | None) -> "LoggedBatch":
        """The same rows with other reward-model predictions (validated again)."""
        return LoggedBatch(self.actions, self.rewards, self.propensities, self.target_probs, reward_hat)

    def with_target(self, target_probs: np.ndarray) -> "LoggedBatch":
        """The same logged rows evaluated against another target policy."""
        return LoggedBatch(self.actions, self.rewards, self.propensities, target_probs, self.reward_hat)

    def take(self, index: np.ndarray) -> "LoggedBatch":
        """The rows at ``index`` (int (m,)), in that order."""
        idx = np.asarray(index)
        q = None if self.reward_hat is None else self.reward_hat[idx]
        return LoggedBatch(self.actions[idx], self.rewards[idx], self.propensities[idx], self.target_probs[idx], q)


def _init_naming_obp(init):
    """``LoggedBatch(action=..., pscore=...)`` (OBP's names): a ``TypeError`` that names the fields to use."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        obp = [k for k in kwargs if k in LoggedBatch.OBP_NAMES or k == "position"]
        if obp:
            names = ", ".join(f"{k} -> {LoggedBatch.OBP_NAMES[k]}" for k in obp if k in LoggedBatch.OBP_NAMES)
            raise TypeError(f"LoggedBatch got Open Bandit Pipeline's argument name(s) {', '.join(obp)}: "
                            f"{'use ' + names + ', or ' if names else ''}call LoggedBatch.from_obp(...), which takes OBP's names")
        init(self, *args, **kwargs)

    return __init__


LoggedBatch.__init__ = _init_naming_obp(LoggedBatch.__init__)  # type: ignore[method-assign]
