"""Every policy; the names are the literal table ``bandit.policy.POLICY_REGISTRY`` (modules imported on use).

| name | config | learns from |
| --- | --- | --- |
| uniform, fixed, epsilon-greedy, oracle | ``bandit.policies.baselines`` | baselines (oracle: full information only) |
| regression, classifier, taskspec | ``bandit.policies.regression`` | scikit-learn, saved as arrays |
| reinforce | ``bandit.policies.reinforce`` | torch MLP, REINFORCE |
| vw | ``bandit.policies.vw`` | Vowpal Wabbit ``--cb_explore_adf`` |
| cql, bcq | ``bandit.policies.offline_rl`` | d3rlpy discrete offline RL |
"""
