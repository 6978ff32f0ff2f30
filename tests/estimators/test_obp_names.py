"""Open Bandit Pipeline's vocabulary: every OBP name either works (with a one-line hint naming this
project's) or says which name to use."""

from __future__ import annotations

import numpy as np
import pytest

from estimators import LoggedBatch
from estimators.registry import OBPNameWarning, make_estimator, parse_estimator


def _obp_arrays(seed: int = 0, n: int = 400, k: int = 3):
    rng = np.random.default_rng(seed)
    action = rng.integers(0, k, n)
    reward = rng.binomial(1, 0.2 + 0.2 * action / k).astype(float)
    pscore = np.full(n, 1 / k)
    action_dist = rng.dirichlet(np.ones(k), size=n)[:, :, None]  # OBP's (n, actions, positions)
    hat = rng.uniform(0, 1, size=(n, k, 1))
    return dict(action=action, reward=reward, pscore=pscore, action_dist=action_dist, estimated_rewards_by_reg_model=hat)


@pytest.mark.parametrize("obp, ours", [("ipw", "ips"), ("snipw", "snips"), ("dr-os", "dros"), ("DoublyRobust", "dr"),
                                       ("InverseProbabilityWeighting", "ips"), ("SwitchDoublyRobust", "switch-dr")])
def test_obp_estimator_names_work_and_name_ours(obp, ours):
    with pytest.warns(OBPNameWarning, match=f"here it is '{ours}'"):
        est = make_estimator(obp)
    assert est.name == ours


@pytest.mark.parametrize("name, setting", [("ipw", "clip"), ("switch-dr", "tau"), ("dros", "lam")])
def test_lambda_is_each_estimators_own_hyperparameter(name, setting):
    with pytest.warns(OBPNameWarning):
        est = make_estimator(name, {"lambda_": 7.0})
    assert getattr(est, setting) == 7.0


def test_lambda_on_an_estimator_without_one_says_so():
    with pytest.raises(ValueError, match="'dr' has no setting lambda_ .*lambda_ is clip of ips, tau of switch-dr, lam of dros"):
        make_estimator("dr", {"lambda_": 5})
    with pytest.raises(ValueError, match="'dm' has no setting lambda_ .*no settings"):
        make_estimator("dm", {"lambda_": 5})


def test_a_command_line_spec_takes_obp_names():
    with pytest.warns(OBPNameWarning):
        assert parse_estimator("ipw:lambda_=20").clip == 20


def test_unknown_names_list_ours_and_obps():
    with pytest.raises(KeyError, match="known estimators: dm, ips.*ipw, snipw"):
        make_estimator("ipx")


@pytest.mark.parametrize("name", ["ips", "snips", "dm", "dr", "sndr", "switch-dr", "dros"])
def test_estimate_policy_value_takes_obps_arrays_and_equals_estimate(name):
    arrays = _obp_arrays()
    est = make_estimator(name)
    value = est.estimate_policy_value(**arrays)
    assert value == pytest.approx(est.estimate(LoggedBatch.from_obp(**arrays), warn=False).value, abs=1e-15)
    out = est.estimate_interval(**arrays, alpha=0.1, n_bootstrap_samples=200, random_state=3)
    assert set(out) == {"mean", "90.0% CI (lower)", "90.0% CI (upper)"}
    assert out["90.0% CI (lower)"] <= out["mean"] <= out["90.0% CI (upper)"]
    assert out == est.estimate_interval(**arrays, alpha=0.1, n_bootstrap_samples=200, random_state=3)  # seeded


def test_ips_by_hand_on_obps_arrays():
    arrays = _obp_arrays(seed=1)
    pi = arrays["action_dist"][np.arange(400), arrays["action"], 0]
    want = float(np.mean(pi / arrays["pscore"] * arrays["reward"]))
    assert make_estimator("ips").estimate_policy_value(**arrays) == pytest.approx(want, rel=1e-12)


def test_obp_names_given_to_this_projects_calls_say_which_to_use():
    arrays = _obp_arrays()
    with pytest.raises(TypeError, match="action -> actions.*pscore -> propensities.*LoggedBatch.from_obp"):
        LoggedBatch(action=arrays["action"], reward=arrays["reward"], pscore=arrays["pscore"], action_dist=arrays["action_dist"])
    batch = LoggedBatch.from_obp(**arrays)
    with pytest.raises(TypeError, match="action_dist is Open Bandit Pipeline's.*estimate_policy_value"):
        make_estimator("dr").estimate(batch, action_dist=arrays["action_dist"])
    with pytest.raises(TypeError, match="pass pscore"):
        make_estimator("dm").estimate_policy_value(action=arrays["action"], reward=arrays["reward"],
                                                   action_dist=arrays["action_dist"],
                                                   estimated_rewards_by_reg_model=arrays["estimated_rewards_by_reg_model"])
    with pytest.raises(TypeError, match="unknown argument.*estimated_pscore"):
        make_estimator("ips").estimate_policy_value(**arrays, estimated_pscore=arrays["pscore"])
