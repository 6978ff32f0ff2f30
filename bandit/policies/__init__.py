"""Every policy; the names are the literal table ``POLICY_REGISTRY`` below (modules imported on use).

| name | config | learns from |
| --- | --- | --- |
| uniform, fixed, epsilon-greedy, oracle | ``bandit.policies.baselines`` | baselines (oracle: full information only) |
| regression, classifier, taskspec | ``bandit.policies.regression`` | scikit-learn, saved as arrays |
| reinforce | ``bandit.policies.reinforce`` | torch MLP, REINFORCE |
| vw | ``bandit.policies.vw`` | Vowpal Wabbit ``--cb_explore_adf`` |
| cql, bcq | ``bandit.policies.offline_rl`` | d3rlpy discrete offline RL |

The policies import the protocol (``bandit.policy``); the registry names them here, above them,
so that nothing they import names them back.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

# name -> "module:ConfigClass": one literal table. Modules are imported only when the policy is
# asked for, so heavy backends (torch, vowpalwabbit, d3rlpy) stay out of start-up.
POLICY_REGISTRY: dict[str, str] = {
    "uniform": "bandit.policies.baselines:UniformConfig",
    "fixed": "bandit.policies.baselines:FixedConfig",
    "epsilon-greedy": "bandit.policies.baselines:EpsilonGreedyConfig",
    "oracle": "bandit.policies.baselines:OracleConfig",
    "regression": "bandit.policies.regression:RegressionConfig",
    "classifier": "bandit.policies.regression:ClassifierConfig",
    "taskspec": "bandit.policies.regression:TaskSpecConfig",
    "reinforce": "bandit.policies.reinforce:ReinforceConfig",
    "vw": "bandit.policies.vw:VWConfig",
    "cql": "bandit.policies.offline_rl:DiscreteCQLConfig",
    "bcq": "bandit.policies.offline_rl:DiscreteBCQConfig",
}


def register_policy(name: str, target: str) -> None:
    """Add a policy at run time (``"module:ConfigClass"``)."""
    POLICY_REGISTRY[name] = target


def get_config_class(name: str) -> Callable[..., Any]:
    import importlib

    if name not in POLICY_REGISTRY:
        raise KeyError(f"unknown policy {name!r}; known policies: {', '.join(sorted(POLICY_REGISTRY))}")
    module, attr = POLICY_REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), attr)


def policy_names() -> Sequence[str]:
    return sorted(POLICY_REGISTRY)
