"""d3rlpy policies (DiscreteCQL, DiscreteBCQ) on one-step episodes: learning, artifacts, checkpoints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bandit.data import TrainingData
from bandit.policies.offline_rl import DiscreteBCQConfig, DiscreteCQLConfig

pytest.importorskip("d3rlpy")
pytestmark = pytest.mark.usefixtures("_one_torch_thread")

FAST = {"n_steps": 150, "hidden_units": (32,), "batch_size": 32, "learning_rate": 3e-3}


@pytest.mark.parametrize(
    "config, feedback",
    [
        (DiscreteCQLConfig(**FAST), "full"),
        (DiscreteCQLConfig(**FAST), "bandit"),
        (DiscreteBCQConfig(**FAST), "full"),
        (DiscreteBCQConfig(**FAST), "bandit"),
    ],
)
def test_recovers_most_of_the_oracle(_learner_data, config, feedback, capfd):
    data = _learner_data.full if feedback == "full" else _learner_data.bandit
    policy = config.create(_learner_data.arms).fit(data)
    probs = policy.probabilities(_learner_data.test_features)
    assert probs.shape == (len(_learner_data.test_features), len(_learner_data.arms)) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert _learner_data.value(probs) >= 0.8 * _learner_data.oracle_value
    expected_transitions = int(np.isfinite(data.rewards).sum()) if feedback == "full" else data.n
    assert policy.training_metrics_["transitions"] == expected_transitions
    assert capfd.readouterr().out == ""  # nothing on stdout: `--json` output stays one document


def test_probabilities_are_softmax_of_q_over_tau(_learner_data):
    policy = DiscreteCQLConfig(**FAST, tau=0.5).create(_learner_data.arms).fit(_learner_data.full)
    x = _learner_data.test_features[:10]
    q = policy.q_values(x)
    z = np.exp((q - q.max(axis=1, keepdims=True)) / 0.5)
    np.testing.assert_allclose(policy.probabilities(x), z / z.sum(axis=1, keepdims=True), rtol=1e-12)


def test_bcq_gives_no_probability_to_arms_its_imitator_forbids(_learner_data):
    d = _learner_data.bandit
    # a logging policy that never chose arm 3 ("lookup")
    keep = d.actions != 3
    data = TrainingData(features=d.features[keep], arm_names=d.arm_names, query_ids=tuple(np.array(d.query_ids)[keep]),
                        actions=d.actions[keep], observed=d.observed[keep], propensities=d.propensities[keep])
    # a weak logit penalty (beta) lets the imitator learn that arm 3 is never logged
    policy = DiscreteBCQConfig(**FAST, action_flexibility=0.3, beta=0.01).create(_learner_data.arms).fit(data)
    probs = policy.probabilities(_learner_data.test_features)
    allowed = policy.allowed(_learner_data.test_features)
    assert allowed[:, 3].mean() < 0.1 and allowed[:, :3].any(axis=1).all()
    assert (probs[~allowed] == 0).all() and (probs[allowed] > 0).all()


@pytest.mark.parametrize("config_class", [DiscreteCQLConfig, DiscreteBCQConfig])
def test_save_load_same_probabilities_without_pickles(_learner_data, config_class, tmp_path):
    cfg = config_class(**{**FAST, "n_steps": 30})
    policy = cfg.create(_learner_data.arms).fit(_learner_data.full)
    policy.save(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["d3rlpy_params.json", "model.safetensors", "policy.json"]
    params = json.loads((tmp_path / "run" / "d3rlpy_params.json").read_text())
    assert params["observation_shape"] == [8] and params["action_size"] == 4  # d3rlpy's own params.json format
    loaded = cfg.load_policy(tmp_path / "run", _learner_data.arms)
    x = _learner_data.test_features
    np.testing.assert_array_equal(loaded.q_values(x), policy.q_values(x))
    np.testing.assert_array_equal(loaded.probabilities(x), policy.probabilities(x))
    other = DiscreteBCQConfig if config_class is DiscreteCQLConfig else DiscreteCQLConfig
    with pytest.raises(ValueError, match=f"holds a '{cfg.name}' policy; expected '{other.name}'"):
        other().load_policy(tmp_path / "run", _learner_data.arms)
    with pytest.raises(ValueError, match="trained on arms"):
        cfg.load_policy(tmp_path / "run", _learner_data.arms[:3])


def test_deterministic_under_a_seed_and_leaves_global_random_state_alone(_learner_data):
    import torch

    cfg = DiscreteCQLConfig(**{**FAST, "n_steps": 20})
    np_before, torch_before = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    a = cfg.create(_learner_data.arms).fit(_learner_data.bandit).q_values(_learner_data.test_features)
    b = cfg.create(_learner_data.arms).fit(_learner_data.bandit).q_values(_learner_data.test_features)
    np.testing.assert_array_equal(a, b)
    assert np.array_equal(np.random.get_state()[1], np_before) and torch.equal(torch.get_rng_state(), torch_before)
    c = DiscreteCQLConfig(**{**FAST, "n_steps": 20, "seed": 1}).create(_learner_data.arms).fit(_learner_data.bandit)
    assert not np.array_equal(a, c.q_values(_learner_data.test_features))


def test_resume_from_a_checkpoint_continues_exactly(_learner_data, tmp_path):
    cfg = DiscreteBCQConfig(**{**FAST, "n_steps": 40, "checkpoint_every": 10, "keep_checkpoints": 10, "target_update_interval": 7})
    x = _learner_data.test_features
    straight = cfg.create(_learner_data.arms).fit(_learner_data.full, checkpoint_dir=tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").glob("*.json"))[-1] == "ckpt-000000040.json"
    (tmp_path / "b").mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(tmp_path / "a" / f"ckpt-000000020{suffix}", tmp_path / "b")
    resumed = cfg.create(_learner_data.arms).fit(_learner_data.full, checkpoint_dir=tmp_path / "b")
    np.testing.assert_array_equal(resumed.q_values(x), straight.q_values(x))
    with pytest.raises(ValueError, match="another config or other data"):
        DiscreteBCQConfig(**{**FAST, "n_steps": 40, "beta": 0.9}).create(_learner_data.arms).fit(_learner_data.full, checkpoint_dir=tmp_path / "b")


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: DiscreteCQLConfig(n_steps=0), r"DiscreteCQLConfig: n_steps must be an int >= 1; got 0"),
        (lambda: DiscreteCQLConfig(alpha=-1.0), r"alpha must be >= 0; got -1.0"),
        (lambda: DiscreteCQLConfig(tau=0.0), r"tau must be > 0; got 0.0"),
        (lambda: DiscreteCQLConfig(hidden_units=()), r"hidden_units must be one or more ints >= 1"),
        (lambda: DiscreteBCQConfig(action_flexibility=0.0), r"DiscreteBCQConfig: action_flexibility must be in \(0, 1\]; got 0.0"),
        (lambda: DiscreteBCQConfig(batch_size=True), r"batch_size must be an int >= 1; got True"),
    ],
)
def test_bad_config(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_bad_fit_input(_learner_data):
    d = _learner_data.full
    empty = TrainingData(features=d.features, arm_names=d.arm_names, query_ids=d.query_ids, rewards=np.full_like(d.rewards, np.nan))
    with pytest.raises(ValueError, match="no transition"):
        DiscreteCQLConfig().create(_learner_data.arms).fit(empty)
    other = TrainingData(features=d.features, arm_names=("w", "x", "y", "z"), query_ids=d.query_ids, rewards=d.rewards)
    with pytest.raises(ValueError, match=r"training data arms \['w', 'x', 'y', 'z'\] differ"):
        DiscreteCQLConfig().create(_learner_data.arms).fit(other)


def test_importing_the_policies_does_not_import_heavy_backends():
    code = (
        "import sys, bandit.policies, bandit.policies.vw, bandit.policies.reinforce, bandit.policies.offline_rl\n"
        "heavy = [m for m in ('torch', 'vowpalwabbit', 'd3rlpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
