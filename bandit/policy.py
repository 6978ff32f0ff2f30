"""The ``Policy`` protocol: what every draft-selection policy offers (the registry is ``bandit.policies``).

A policy maps prompt features to a distribution over the log's arms (in the order of
``LogMetadata.arms``; action ids are 0-based everywhere in this package).

Life cycle (after d3rlpy and scikit-learn): a frozen ``*Config`` dataclass holds the settings
and only the settings; ``config.create(arm_names)`` builds an unfitted policy; ``fit(...)``
validates its input and sets the fitted state; ``save(dir)`` / ``load(dir)`` write and read the
artifact in the backend's own format (never pickles). Using a policy before ``fit`` raises
``NotFittedError``.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np


from logging_data.featurizing import NotFittedError  # one class for policies and featurizers


@runtime_checkable
class Policy(Protocol):
    """A draft-selection policy over a fixed, ordered list of arms."""

    arm_names: tuple[str, ...]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Action probabilities, float64 of shape (n, n_arms); each row sums to 1.

        ``features`` is float32/float64 of shape (n, d) from the policy's featurizer. Greedy
        policies return one-hot rows.
        """
        ...

    def act(self, features: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Sample one arm per row: (actions int64 (n,), their exact propensities float64 (n,))."""
        ...


def check_training_arms(data: Any, arm_names: Sequence[str]) -> None:
    """Refuse training data whose ordered arms are not the policy's."""
    if tuple(data.arm_names) != tuple(arm_names):
        raise ValueError(f"training data arms {list(data.arm_names)} differ from the policy's arms {list(arm_names)}")


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample one action per row of ``probs`` (n, n_arms); returns (actions (n,), propensities (n,)).

    The propensity is the probability the row gave the sampled action, exactly (float64).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (n, n_arms); got shape {probs.shape}")
    cum = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cum[:, -1]
    actions = (u[:, None] >= cum).sum(axis=1)
    actions = np.minimum(actions, probs.shape[1] - 1)
    # never pick a zero-probability arm through rounding at the top of the cumsum
    zero = probs[np.arange(len(actions)), actions] <= 0
    if zero.any():
        actions[zero] = probs[zero].argmax(axis=1)
    return actions.astype(np.int64), probs[np.arange(len(actions)), actions]


def greedy(probs_or_scores: np.ndarray) -> np.ndarray:
    """One-hot rows at the argmax (ties to the lowest arm index); float64 (n, n_arms)."""
    s = np.asarray(probs_or_scores)
    out = np.zeros(s.shape, dtype=np.float64)
    out[np.arange(s.shape[0]), s.argmax(axis=1)] = 1.0
    return out


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``scores`` (n, n_arms) / temperature; float64, rows sum to 1."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# -- the config -> create -> fit -> save/load life cycle ------------------------------------------
@runtime_checkable
class FittablePolicy(Policy, Protocol):
    """A policy built by a config: ``fit`` on ``bandit.data.TrainingData``, ``save``/``load`` a folder.

    ``fit(data, checkpoint_dir=None)`` trains and returns self; learners with many steps write
    checkpoints to ``checkpoint_dir`` and resume from the latest one when it is given again (so an
    interrupted ``bandit-log train`` restarts where it stopped). ``save(path)`` writes the artifact
    in the backend's own format (safetensors for torch, VW's binary model, d3rlpy's own files,
    JSON/.npy for scikit-learn parameters): never pickles. ``Config.load_policy(path, arms)``
    reads it back.
    """

    def fit(self, data: Any, checkpoint_dir: Any = None) -> "FittablePolicy": ...

    # Optional, read with getattr by ``bandit.runs``: after ``fit``, ``training_metrics_`` may
    # hold a dict of JSON-safe training metrics (losses, steps, ...) written to metrics.json.

    def save(self, path: Any) -> None: ...


class PolicyConfig(Protocol):
    """A frozen dataclass of settings only.

    ``name`` (ClassVar) is the registry name; ``featurizer`` names the prompt featurizer
    (``logging_data.features``); ``seed`` makes training deterministic. ``create(arms)`` takes the
    log's ``logging_data.Arm`` tuple (names in order, plus attrs usable as action features) and
    returns an unfitted ``FittablePolicy``; ``load_policy(path, arms)`` returns a fitted one saved
    by ``save``.
    """

    featurizer: str
    seed: int
    # Optional ClassVars, read with getattr (defaults in brackets):
    #   feedback: tuple[str, ...]  the feedback kinds fit accepts, "full" and/or "bandit"
    #                              [("full", "bandit")]; fit raises ValueError on the others.
    #   hindsight: bool            the policy memorises outcomes by query_id (the oracle): it
    #                              is fitted on every split and only answers for those prompts
    #                              [False].

    def create(self, arms: Sequence[Any]) -> FittablePolicy: ...

    def load_policy(self, path: Any, arms: Sequence[Any]) -> FittablePolicy: ...


# -- policies keyed by prompt id ------------------------------------------------------------------
@runtime_checkable
class QueryKeyedPolicy(Protocol):
    """A policy that answers by prompt id rather than features (the hindsight oracle).

    Its ``probabilities(features)`` raises ``TypeError``; callers go through
    ``policy_probabilities`` (as ``bandit.runs.Run.probabilities`` does), which passes the ids.
    """

    arm_names: tuple[str, ...]

    def probabilities_for(self, query_ids: Sequence[str], features: np.ndarray) -> np.ndarray:
        """float64 (n, n_arms) for the prompts ``query_ids`` (n,); ``features`` (n, d) may be ignored."""
        ...


def policy_probabilities(policy: Any, features: np.ndarray, query_ids: Sequence[str] | None = None) -> np.ndarray:
    """A policy's action probabilities float64 (n, n_arms), passing prompt ids to policies that need them."""
    if isinstance(policy, QueryKeyedPolicy):
        if query_ids is None:
            raise ValueError(f"{type(policy).__name__} answers by query_id; pass query_ids (got none)")
        return policy.probabilities_for(list(query_ids), features)
    return policy.probabilities(features)


def policy_act(policy: Any, features: np.ndarray, rng: np.random.Generator,
               query_ids: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sample one arm per row: (actions int64 (n,), exact propensities float64 (n,))."""
    if isinstance(policy, QueryKeyedPolicy):
        return sample_actions(policy_probabilities(policy, features, query_ids), rng)
    return policy.act(features, rng)
