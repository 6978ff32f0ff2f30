"""Baselines: uniform random, one fixed arm, epsilon-greedy around the best arm, and the oracle.

The oracle is the best arm per prompt in hindsight: it memorises the full-information outcomes
by ``query_id`` (so it is fitted on every split, ``hindsight = True``) and answers only for the
prompts it saw, through ``probabilities_for(query_ids, features)`` (see
``bandit.policy.QueryKeyedPolicy``). It is the ceiling the learners are measured against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from bandit.data import TrainingData
from bandit.policy import NotFittedError, sample_actions

from ._common import PolicyConfigBase, SavedStatePolicy, arm_values, best_arm, check_number, one_hot


# -- the rules, once: the policies below and the report's baseline targets (bandit.report) ------
def uniform_probabilities(n: int, n_arms: int) -> np.ndarray:
    """float64 (n, n_arms): every arm with probability 1 / n_arms."""
    return np.full((n, n_arms), 1.0 / n_arms)


def fixed_probabilities(n: int, n_arms: int, arm: int) -> np.ndarray:
    """float64 (n, n_arms): one-hot at arm index ``arm``."""
    return one_hot(np.full(n, arm), n_arms)


def best_in_hindsight(rewards: np.ndarray) -> np.ndarray:
    """int64 (n,): each row's best measured arm (NaN = unmeasured; ties to the lowest index)."""
    r = np.asarray(rewards, dtype=float)
    return np.nanargmax(np.where(np.isfinite(r), r, -np.inf), axis=1).astype(np.int64)


def oracle_probabilities(rewards: np.ndarray) -> np.ndarray:
    """float64 (n, n_arms): one-hot at each row's best measured arm (``best_in_hindsight``)."""
    return one_hot(best_in_hindsight(rewards), np.asarray(rewards).shape[1])


# -- uniform ------------------------------------------------------------------------------------
class UniformPolicy(SavedStatePolicy):
    """Every arm with probability 1 / n_arms, whatever the prompt."""

    def _fit(self, data: TrainingData) -> dict[str, Any]:
        return {}

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        return uniform_probabilities(x.shape[0], len(self.arm_names))


@dataclass(frozen=True)
class UniformConfig(PolicyConfigBase):
    """Uniform random choice among the log's arms (the usual exploration logging policy)."""

    name: ClassVar[str] = "uniform"
    policy_class: ClassVar[type] = UniformPolicy


# -- one fixed arm ------------------------------------------------------------------------------
class FixedArmPolicy(SavedStatePolicy):
    """Always the configured arm."""

    def __init__(self, config: "FixedConfig", arm_names: tuple[str, ...]) -> None:
        super().__init__(config, arm_names)
        if config.arm not in arm_names:
            hint = "set arm=NAME" if not config.arm else f"arm {config.arm!r} is not one of them"
            raise ValueError(f"fixed policy: {hint}; the arms are {', '.join(arm_names)}")

    def _fit(self, data: TrainingData) -> dict[str, Any]:
        return {"arm_value": float(arm_values(data)[self.arm_names.index(self.config.arm)])}

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        return fixed_probabilities(x.shape[0], len(self.arm_names), self.arm_names.index(self.config.arm))


@dataclass(frozen=True)
class FixedConfig(PolicyConfigBase):
    """Always play one arm (``arm``): the single-draft baselines."""

    arm: str = ""  # the arm's name, one of the log's arms

    name: ClassVar[str] = "fixed"
    policy_class: ClassVar[type] = FixedArmPolicy

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.arm, str):
            raise ValueError(f"fixed: arm must be an arm name (string); got {self.arm!r}")


# -- epsilon-greedy -------------------------------------------------------------------------------
class EpsilonGreedyPolicy(SavedStatePolicy):
    """The arm best on average in training with probability 1 - epsilon + epsilon / n_arms."""

    def _fit(self, data: TrainingData) -> dict[str, Any]:
        values = arm_values(data)
        self.best_arm_ = best_arm(values, self.config.name, "in the training data")
        return {"arm_values": {a: (float(v) if np.isfinite(v) else None) for a, v in zip(self.arm_names, values)},
                "best_arm": self.arm_names[self.best_arm_]}

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        k, eps = len(self.arm_names), float(self.config.epsilon)
        probs = np.full((x.shape[0], k), eps / k)
        probs[:, self.best_arm_] += 1.0 - eps
        return probs

    def _state(self):
        return {"best_arm": self.arm_names[self.best_arm_]}, {}

    def _restore(self, meta, arrays) -> None:
        self.best_arm_ = self.arm_names.index(meta["best_arm"])


@dataclass(frozen=True)
class EpsilonGreedyConfig(PolicyConfigBase):
    """Best arm on average (estimated from the training data), explored with probability epsilon."""

    epsilon: float = 0.1  # probability mass spread uniformly over all arms, in [0, 1]

    name: ClassVar[str] = "epsilon-greedy"
    policy_class: ClassVar[type] = EpsilonGreedyPolicy

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number(self.name, "epsilon", self.epsilon, low=0.0, high=1.0)


# -- the oracle -----------------------------------------------------------------------------------
class OraclePolicy(SavedStatePolicy):
    """Best arm per prompt in hindsight, looked up by query_id (ties to the lowest arm index)."""

    def _fit(self, data: TrainingData) -> dict[str, Any]:
        r = data.rewards
        unmeasured = ~np.isfinite(r).any(axis=1)
        if unmeasured.any():
            first = data.query_ids[int(np.flatnonzero(unmeasured)[0])]
            raise ValueError(f"oracle: {int(unmeasured.sum())} prompt(s) have no measured arm (first: query_id={first})")
        best = best_in_hindsight(r)
        self.query_ids_ = tuple(data.query_ids)
        self.best_arms_ = best
        self._index = {q: i for i, q in enumerate(self.query_ids_)}
        return {"value": float(r[np.arange(data.n), best].mean())}

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        raise TypeError("the oracle answers by query_id: call probabilities_for(query_ids, features) "
                        "(bandit.policy.policy_probabilities and Run.probabilities do)")

    def act(self, features: np.ndarray, rng: np.random.Generator):
        raise TypeError("the oracle answers by query_id: use bandit.policy.policy_act(policy, features, rng, query_ids)")

    def probabilities_for(self, query_ids: Sequence[str], features: np.ndarray | None = None) -> np.ndarray:
        """One-hot float64 (n, n_arms) at each prompt's best arm; ``features`` (n, d) only sized against."""
        if not self._fitted():
            raise NotFittedError("oracle policy is not fitted; call fit(full-information data) first (or load a saved one)")
        ids = [str(q) for q in query_ids]
        if features is not None and np.asarray(features).shape[0] != len(ids):
            raise ValueError(f"oracle: {len(ids)} query_ids but features has {np.asarray(features).shape[0]} rows")
        missing = [q for q in ids if q not in self._index]
        if missing:
            raise ValueError(f"oracle: {len(missing)} prompt(s) were not in the outcomes it was fitted on "
                             f"(first: query_id={missing[0]}); the oracle only knows prompts whose every arm was measured")
        rows = np.fromiter((self._index[q] for q in ids), dtype=np.int64, count=len(ids))
        return one_hot(self.best_arms_[rows], len(self.arm_names))

    def act_for(self, query_ids: Sequence[str], features: np.ndarray | None, rng: np.random.Generator):
        return sample_actions(self.probabilities_for(query_ids, features), rng)

    def _state(self):
        return {"query_ids": list(self.query_ids_)}, {"best_arms": self.best_arms_}

    def _restore(self, meta, arrays) -> None:
        self.query_ids_ = tuple(meta["query_ids"])
        self.best_arms_ = arrays["best_arms"].astype(np.int64)
        self._index = {q: i for i, q in enumerate(self.query_ids_)}


@dataclass(frozen=True)
class OracleConfig(PolicyConfigBase):
    """The best arm per prompt in hindsight; needs the outcomes table (full information)."""

    name: ClassVar[str] = "oracle"
    policy_class: ClassVar[type] = OraclePolicy
    feedback: ClassVar[tuple[str, ...]] = ("full",)
    hindsight: ClassVar[bool] = True
