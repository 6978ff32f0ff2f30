"""Shared fixtures for the learning-policy tests: a small simulated problem with a known oracle.

``_learner_data(seed)`` builds prompts from four domains; each domain has a different best arm
among four (with rewards in [0, 1], noisy, some missing), and the prompt features are a noisy
one-hot of the domain plus unrelated noise columns. A policy that reads the features can reach
the oracle; one that ignores them (uniform, or any single arm) cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from bandit.data import TrainingData
from logging_data.schema import Arm

LEARNER_ARMS = (
    Arm("none", kind="none", cost=0.0),
    Arm("small", kind="draft", cost=0.05, attrs={"family": "llama", "params_m": 135, "draft_tokens": 5}),
    Arm("large", kind="draft", cost=0.2, attrs={"family": "qwen", "params_m": 500, "draft_tokens": 5}),
    Arm("lookup", kind="prompt_lookup", cost=0.0, attrs={"draft_tokens": 10, "cheap": True}),
)


@dataclass(frozen=True)
class LearnerProblem:
    arms: tuple[Arm, ...]
    full: TrainingData  # full information, some rewards NaN
    bandit: TrainingData  # bandit feedback from a non-uniform logging policy, exact propensities
    test_features: np.ndarray  # float32 (n_test, d)
    test_rewards: np.ndarray  # float64 (n_test, n_arms), expected rewards (no noise, no NaN)

    def value(self, probs: np.ndarray) -> float:
        """Expected reward of a policy's probabilities (n_test, n_arms) on the test prompts."""
        return float((probs * self.test_rewards).sum(axis=1).mean())

    @property
    def oracle_value(self) -> float:
        return float(self.test_rewards.max(axis=1).mean())

    @property
    def best_fixed_value(self) -> float:
        return float(self.test_rewards.mean(axis=0).max())


def _make(seed: int = 0, n_train: int = 400, n_test: int = 200, n_noise: int = 4) -> LearnerProblem:
    rng = np.random.default_rng(seed)
    n_domains, k = 4, len(LEARNER_ARMS)
    # mean reward of arm a in domain d: the best arm is d (a permutation), others are poor
    means = np.full((n_domains, k), 0.15)
    means[np.arange(n_domains), np.arange(k)] = 0.9
    means[0, 1] = 0.4  # a runner-up so that the problem is not symmetric

    def prompts(n: int) -> tuple[np.ndarray, np.ndarray]:
        dom = rng.integers(n_domains, size=n)
        x = np.concatenate([np.eye(n_domains)[dom] + rng.normal(0, 0.2, (n, n_domains)), rng.normal(0, 1, (n, n_noise))], axis=1)
        return dom, x.astype(np.float32)

    dom, x = prompts(n_train)
    rewards = np.clip(means[dom] + rng.normal(0, 0.1, (n_train, k)), 0, 1)
    rewards[rng.random((n_train, k)) < 0.05] = np.nan
    names = tuple(a.name for a in LEARNER_ARMS)
    qids = tuple(f"q{i}" for i in range(n_train))
    full = TrainingData(features=x, arm_names=names, query_ids=qids, rewards=rewards, domains=tuple(f"d{d}" for d in dom))
    # bandit feedback: a skewed logging policy (arm 0 favoured), exact propensities
    log_probs = np.array([0.4, 0.2, 0.2, 0.2])
    actions = rng.choice(k, size=n_train, p=log_probs)
    observed = np.clip(means[dom, actions] + rng.normal(0, 0.1, n_train), 0, 1)
    bandit = TrainingData(features=x, arm_names=names, query_ids=qids, actions=actions, observed=observed, propensities=log_probs[actions])
    test_dom, test_x = prompts(n_test)
    return LearnerProblem(LEARNER_ARMS, full, bandit, test_x, means[test_dom])


@pytest.fixture(scope="session")
def _learner_data() -> LearnerProblem:
    """The simulated learner problem (seed 0), built once per session."""
    problem = _make(0)
    # the problem is only a test of learning if ignoring the prompt is clearly worse
    assert problem.best_fixed_value < 0.6 * problem.oracle_value
    return problem


@pytest.fixture(scope="module")
def _one_torch_thread():
    """Run torch on one thread for the module, then restore the setting.

    On this shared 2-core machine torch's intra-op threads spin against the other test
    processes: one thread trains these tiny networks 10-40x faster, with identical results.
    """
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
