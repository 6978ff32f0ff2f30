"""The Policy contract suite, run on every registered policy name (bandit.testing.check_policy)."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

from bandit.configs import make_config
from bandit.policies import POLICY_REGISTRY, policy_names
from bandit.testing import PolicyContractError, check_policy, simulated_training_data

# Tiny budgets per policy (make_config refuses a setting the config does not declare, so a
# renamed field fails here loudly instead of silently training at full size).
TINY: dict[str, dict] = {
    "fixed": {"arm": "arm1"},
    "reinforce": {"n_epochs": 3, "hidden_sizes": (8,), "batch_size": 32},
    "vw": {"n_passes": 1, "bit_precision": 12},
    "cql": {"n_steps": 20, "batch_size": 32, "hidden_units": (8,)},
    "bcq": {"n_steps": 20, "batch_size": 32, "hidden_units": (8,)},
}


def _tiny_config(name: str):
    module = POLICY_REGISTRY[name].split(":")[0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} (policy {name!r}) is not written yet")
    return make_config(name, TINY.get(name, {}))


@pytest.fixture(scope="module")
def data():
    return (simulated_training_data(90, n_arms=3, n_domains=3, seed=3),
            simulated_training_data(90, n_arms=3, n_domains=3, seed=3, feedback="bandit"))


@pytest.mark.parametrize("name", policy_names())
def test_every_registered_policy_meets_the_contract(name, data, tmp_path):
    full, bandit = data
    check_policy(_tiny_config(name), full, bandit, tmp_path)


def test_every_policy_of_the_issue_is_registered():
    expected = {"uniform", "fixed", "epsilon-greedy", "oracle", "regression", "classifier", "taskspec",
                "reinforce", "vw", "cql", "bcq"}
    assert expected <= set(policy_names())


# -- the suite itself must catch broken policies -------------------------------------------------------
class _Broken:
    """Wraps a working regression policy and breaks one promise."""

    def __init__(self, inner, flaw):
        self.inner, self.flaw, self.arm_names = inner, flaw, inner.arm_names

    def fit(self, data, checkpoint_dir=None):
        self.inner.fit(data, checkpoint_dir)
        return self

    def probabilities(self, x):
        p = self.inner.probabilities(x)
        if self.flaw == "unnormalised":
            return p * 0.5
        if self.flaw == "float32":
            return p.astype(np.float32)
        if self.flaw == "noisy":
            return np.random.default_rng().dirichlet(np.ones(p.shape[1]), p.shape[0])
        return p

    def act(self, x, rng):
        a, prop = self.inner.act(x, rng)
        if self.flaw == "propensity":
            return a, np.full_like(prop, 0.5)
        return a, prop

    def save(self, path):
        self.inner.save(path)


@dataclasses.dataclass(frozen=True)
class _BrokenConfig:
    flaw: str
    featurizer: str = "hashed"
    seed: int = 0
    name = "broken"

    def create(self, arms):
        return _Broken(make_config("regression", {"output": "softmax", "temperature": 0.2}).create(arms), self.flaw)

    def load_policy(self, path, arms):
        inner = make_config("regression", {"output": "softmax", "temperature": 0.2}).load_policy(path, arms)
        return _Broken(inner, self.flaw)


@pytest.mark.parametrize("flaw, pattern", [
    ("unnormalised", "do not sum to 1"),
    ("float32", "must be float64"),
    ("noisy", "disagree"),
    ("propensity", "propensities must equal"),
])
def test_check_policy_catches_broken_promises(flaw, pattern, data, tmp_path):
    with pytest.raises(PolicyContractError, match=pattern):
        check_policy(_BrokenConfig(flaw), data[0], None, tmp_path)
