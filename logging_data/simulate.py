"""Ground truth for off-policy evaluation: simulated logging on full-information data.

A full-information log (the ``outcomes`` table) knows every arm's reward for every prompt. From
it we *simulate* a logging policy: pick one arm per prompt at random with known probabilities,
keep only that arm's reward, and record the exact probability (the propensity). The result is a
``decisions`` table, as a deployed policy would have logged it, while the true value of any
target policy stays known exactly: ``true_policy_value(reward_matrix, target_probs)``.

Logging policies (frozen dataclasses; ``probabilities(scores)`` -> float64 (n, n_arms)):

- ``UniformLogging()``: every available arm equally likely;
- ``EpsilonGreedyLogging(arm, epsilon)``: ``arm`` with probability ``1 - epsilon``, the rest
  spread uniformly (all arms, including ``arm``, get ``epsilon / n_available``);
- ``SoftmaxLogging(temperature)``: softmax of a score matrix (by default the outcomes' own
  rewards: a logging policy that prefers good arms but explores all).

An arm without an outcome for a prompt (NaN score) is never logged for it; the probabilities of
that row are renormalised over the arms that have one, and the propensity recorded is the exact
float64 probability used to sample.

The module also has a synthetic generator with known reward functions (``SyntheticBandit``) for
property and statistical tests, and ``synthetic_outcomes`` that writes such a world as an
outcomes table with prompts, domains and arms.

numpy and pandas only (this package must not import ``bandit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, Sequence

import numpy as np
import pandas as pd

from .schema import QUERY_LEVEL

LOGGING_POLICIES = ("uniform", "epsilon-greedy", "softmax")


# -- the full-information reward matrix ------------------------------------------------------------
def reward_matrix(outcomes: pd.DataFrame, arm_names: Sequence[str], value: str = "reward") -> tuple[list[str], np.ndarray]:
    """Pivot an outcomes table: (query_ids in first-seen order, ``value`` float64 (n, n_arms)).

    ``value`` is the column to pivot (the reward by default; e.g. ``speedup_count``). Missing
    (query, arm) pairs are NaN. Arms the metadata does not list are an error.
    """
    for col in ("query_id", "arm", value):
        if col not in outcomes.columns:
            raise ValueError(f"outcomes table is missing the {col!r} column; found {', '.join(map(str, outcomes.columns))}")
    arms = list(arm_names)
    qid = outcomes["query_id"].astype(str).to_numpy(dtype=object)
    arm = outcomes["arm"].astype(str).to_numpy(dtype=object)
    unknown = sorted(set(arm) - set(arms))
    if unknown:
        raise ValueError(f"outcomes name arms that are not in the arm list ({', '.join(unknown[:5])}); arms: {', '.join(arms)}")
    codes, uniques = pd.factorize(qid, sort=False)
    arm_idx = pd.Index(arms).get_indexer(arm)
    out = np.full((len(uniques), len(arms)), np.nan)
    out[codes, arm_idx] = outcomes[value].to_numpy(dtype=np.float64, na_value=np.nan)
    return [str(q) for q in uniques], out


def query_frame(outcomes: pd.DataFrame, query_ids: Sequence[str]) -> pd.DataFrame:
    """The query-level columns (query_id, prompt, domain, split) of ``query_ids``, in that order."""
    cols = [c for c in ("query_id",) + QUERY_LEVEL if c in outcomes.columns]
    first = outcomes[cols].assign(query_id=outcomes["query_id"].astype(str)).drop_duplicates("query_id").set_index("query_id")
    return first.reindex(list(query_ids)).reset_index()


# -- logging policies ----------------------------------------------------------------------------
class LoggingPolicy(Protocol):
    name: str

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """float64 (n, n_arms) action probabilities from ``scores`` float64 (n, n_arms); NaN = unavailable."""
        ...


def _renormalise(probs: np.ndarray, available: np.ndarray) -> np.ndarray:
    probs = np.where(available, probs, 0.0)
    total = probs.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    if empty.any():
        raise ValueError(f"{int(empty.sum())} row(s) have no arm with an outcome to log (first: row {int(np.flatnonzero(empty)[0])})")
    return probs / total


@dataclass(frozen=True)
class UniformLogging:
    """Every available arm with equal probability."""

    name: str = "uniform"

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        available = ~np.isnan(np.asarray(scores, dtype=np.float64))
        return _renormalise(np.ones(available.shape), available)


@dataclass(frozen=True)
class EpsilonGreedyLogging:
    """``arm`` (a column index) with probability ``1 - epsilon`` plus ``epsilon`` spread uniformly."""

    arm: int
    epsilon: float = 0.1
    name: str = "epsilon-greedy"

    def __post_init__(self) -> None:
        if not (isinstance(self.arm, (int, np.integer)) and self.arm >= 0):
            raise ValueError(f"EpsilonGreedyLogging: `arm` must be a column index >= 0; got {self.arm!r}")
        if not (isinstance(self.epsilon, (int, float)) and 0 < self.epsilon <= 1):
            raise ValueError(f"EpsilonGreedyLogging: `epsilon` must be in (0, 1] so every arm is explored; got {self.epsilon!r}")

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.arm >= s.shape[1]:
            raise ValueError(f"EpsilonGreedyLogging: `arm` {self.arm} is out of range for {s.shape[1]} arms")
        available = ~np.isnan(s)
        n_avail = available.sum(axis=1, keepdims=True)
        probs = np.where(available, self.epsilon / np.maximum(n_avail, 1), 0.0)
        has_arm = available[:, self.arm]
        probs[has_arm, self.arm] += 1.0 - self.epsilon
        return _renormalise(probs, available)


@dataclass(frozen=True)
class SoftmaxLogging:
    """Softmax of the scores divided by ``temperature`` (> 0) over the available arms."""

    temperature: float = 1.0
    name: str = "softmax"

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0 and np.isfinite(self.temperature)):
            raise ValueError(f"SoftmaxLogging: `temperature` must be a finite number > 0; got {self.temperature!r}")

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        available = ~np.isnan(s)
        z = np.where(available, s / self.temperature, -np.inf)
        top = z.max(axis=1, keepdims=True)
        e = np.exp(z - np.where(np.isfinite(top), top, 0.0))
        return _renormalise(e, available)


def sample_arms(probs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One arm per row of ``probs`` float64 (n, n_arms): (actions int64 (n,), propensities float64 (n,)).

    The propensity is exactly ``probs[i, actions[i]]``; a zero-probability arm is never drawn.
    """
    p = np.asarray(probs, dtype=np.float64)
    cum = np.cumsum(p, axis=1)
    u = rng.random(p.shape[0]) * cum[:, -1]
    actions = np.minimum((u[:, None] >= cum).sum(axis=1), p.shape[1] - 1)
    rows = np.arange(p.shape[0])
    zero = p[rows, actions] <= 0
    if zero.any():  # only through rounding at the very top of the cumulative sum
        actions[zero] = (p[zero] > 0).cumsum(axis=1).argmax(axis=1)
    return actions.astype(np.int64), p[rows, actions]


def simulate_decisions(
    outcomes: pd.DataFrame,
    arm_names: Sequence[str],
    policy: LoggingPolicy,
    rng: np.random.Generator,
    policy_id: str | None = None,
    scores: np.ndarray | None = None,
) -> pd.DataFrame:
    """A decisions frame (one row per query) as ``policy`` would have logged it on ``outcomes``.

    ``scores`` float64 (n_queries, n_arms) in the order of ``reward_matrix`` feeds softmax
    logging; by default the outcomes' rewards. Columns: query_id, prompt, domain, split, arm,
    propensity (exact float64), reward, policy_id: ready for ``Log.append("decisions", ...)``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"`rng` must be a numpy.random.Generator; got {type(rng).__name__}")
    qids, rewards = reward_matrix(outcomes, arm_names)
    if not qids:
        raise ValueError("the outcomes table is empty: nothing to simulate")
    s = rewards if scores is None else np.asarray(scores, dtype=np.float64)
    if s.shape != rewards.shape:
        raise ValueError(f"`scores` must have shape (n_queries, n_arms) = {rewards.shape}; got {s.shape}")
    s = np.where(np.isnan(rewards), np.nan, s)
    probs = policy.probabilities(s)
    actions, propensities = sample_arms(probs, rng)
    frame = query_frame(outcomes, qids)
    frame["arm"] = np.asarray(list(arm_names), dtype=object)[actions]
    frame["propensity"] = propensities
    frame["reward"] = rewards[np.arange(len(qids)), actions]
    frame["policy_id"] = policy_id or policy.name
    return frame


def true_policy_value(rewards: np.ndarray, target_probs: np.ndarray) -> float:
    """The exact value ``mean_i sum_a target_probs[i, a] * rewards[i, a]`` of a target policy.

    ``rewards`` float64 (n, n_arms) is the full-information matrix (NaN where unmeasured);
    ``target_probs`` float64 (n, n_arms) the target's probabilities on the same rows. A target
    that puts probability on an unmeasured arm has no known value: an error naming the row.
    """
    r = np.asarray(rewards, dtype=np.float64)
    pi = np.asarray(target_probs, dtype=np.float64)
    if r.shape != pi.shape or r.ndim != 2:
        raise ValueError(f"`rewards` and `target_probs` must have the same (n, n_arms) shape; got {r.shape} and {pi.shape}")
    if r.shape[0] == 0:
        raise ValueError("no rows: the value of a policy on zero prompts is undefined")
    missing = (np.isnan(r) & (pi > 0)).any(axis=1)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise ValueError(f"the target puts probability on arms without an outcome in {int(missing.sum())} row(s) (first: row {i}); its true value is unknown")
    return float(np.einsum("ij,ij->i", pi, np.where(np.isnan(r), 0.0, r)).mean())


# -- synthetic worlds with known reward functions ---------------------------------------------------
@dataclass(frozen=True)
class SyntheticSample:
    """n contexts of a ``SyntheticBandit``.

    ``contexts`` float64 (n, d); ``expected_rewards`` float64 (n, n_arms), the true mean reward
    of every arm on every context; ``rewards`` float64 (n, n_arms), realised noisy rewards.
    """

    contexts: np.ndarray
    expected_rewards: np.ndarray
    rewards: np.ndarray


@dataclass(frozen=True)
class SyntheticBandit:
    """A contextual bandit with linear expected rewards ``x . theta_a + bias_a`` and Gaussian noise.

    Contexts are standard normal in ``n_features`` dimensions; ``theta`` and ``bias`` are drawn
    once from ``seed``. A per-arm linear regressor is a well-specified reward model here.
    """

    n_arms: int = 4
    n_features: int = 5
    noise: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.n_arms, int) and self.n_arms >= 1):
            raise ValueError(f"SyntheticBandit: `n_arms` must be an integer >= 1; got {self.n_arms!r}")
        if not (isinstance(self.n_features, int) and self.n_features >= 1):
            raise ValueError(f"SyntheticBandit: `n_features` must be an integer >= 1; got {self.n_features!r}")
        if not (isinstance(self.noise, (int, float)) and self.noise >= 0):
            raise ValueError(f"SyntheticBandit: `noise` must be >= 0; got {self.noise!r}")

    @cached_property
    def theta(self) -> np.ndarray:
        """float64 (n_features, n_arms): the true coefficients."""
        return np.random.default_rng(self.seed).normal(0.0, 1.0 / np.sqrt(self.n_features), (self.n_features, self.n_arms))

    @cached_property
    def bias(self) -> np.ndarray:
        """float64 (n_arms,): the true intercepts."""
        return np.random.default_rng([self.seed, 1]).normal(0.0, 0.5, self.n_arms)

    def expected_reward(self, contexts: np.ndarray) -> np.ndarray:
        """float64 (n, n_arms): the true mean reward of every arm on ``contexts`` (n, n_features)."""
        return np.asarray(contexts, dtype=np.float64) @ self.theta + self.bias

    def sample(self, n: int, rng: np.random.Generator) -> SyntheticSample:
        """``n`` fresh contexts with their expected and realised rewards."""
        x = rng.standard_normal((n, self.n_features))
        q = self.expected_reward(x)
        return SyntheticSample(x, q, q + self.noise * rng.standard_normal(q.shape))


SYNTHETIC_DOMAINS = ("code", "translate", "summarize", "chat")
_DOMAIN_WORDS = {
    "code": ("def", "return", "import", "class", "function", "loop"),
    "translate": ("translate", "french", "german", "sentence", "into", "english"),
    "summarize": ("summarize", "article", "news", "brief", "report", "paragraph"),
    "chat": ("hello", "please", "tell", "story", "friend", "why"),
}


def synthetic_outcomes(n_queries: int, arm_names: Sequence[str], noise: float = 0.05, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A synthetic outcomes table whose rewards depend on the prompt's domain.

    Each query draws a domain and a prompt of that domain's words; arm ``a``'s reward is a
    per-(domain, arm) mean drawn from ``seed`` plus Gaussian ``noise``. Returns (frame ready for
    ``Log.append("outcomes", ...)``, expected rewards float64 (n_queries, n_arms)).
    """
    rng = np.random.default_rng(seed)
    arms = list(arm_names)
    means = rng.uniform(0.0, 1.0, (len(SYNTHETIC_DOMAINS), len(arms)))
    dom = rng.integers(0, len(SYNTHETIC_DOMAINS), n_queries)
    prompts = [
        " ".join(rng.choice(_DOMAIN_WORDS[SYNTHETIC_DOMAINS[d]], size=6)) + f" item {i}" for i, d in enumerate(dom)
    ]
    expected = means[dom]
    realised = expected + noise * rng.standard_normal(expected.shape)
    qids = [f"q{i:05d}" for i in range(n_queries)]
    splits = np.where(rng.random(n_queries) < 0.8, "train", "test")
    frame = pd.DataFrame(
        {
            "query_id": np.repeat(qids, len(arms)),
            "prompt": np.repeat(prompts, len(arms)),
            "domain": np.repeat([SYNTHETIC_DOMAINS[d] for d in dom], len(arms)),
            "split": np.repeat(splits, len(arms)),
            "arm": np.tile(arms, n_queries),
            "reward": realised.reshape(-1),
        }
    )
    return frame, expected
