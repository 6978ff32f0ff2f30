"""Every policy, registered by name in ``bandit.policy.POLICY_REGISTRY`` (modules imported on use).

| name | config | learns from |
| --- | --- | --- |
| uniform, fixed, epsilon-greedy, oracle | ``bandit.policies.baselines`` | baselines (oracle: full information only) |
| regression, classifier, taskspec | ``bandit.policies.regression`` | scikit-learn, saved as arrays |
| reinforce | ``bandit.policies.reinforce`` | torch MLP, REINFORCE |
| vw | ``bandit.policies.vw`` | Vowpal Wabbit ``--cb_explore_adf`` |
| cql, bcq | ``bandit.policies.offline_rl`` | d3rlpy discrete offline RL |
"""

from bandit.policy import POLICY_REGISTRY, register_policy

_POLICIES = {
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

for _name, _target in _POLICIES.items():
    register_policy(_name, _target)

__all__ = ["POLICY_REGISTRY"]
