"""REINFORCE policy: learning on full information and bandit feedback, artifacts, checkpoints."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bandit.data import TrainingData
from bandit.policy import NotFittedError
from bandit.policies.reinforce import ReinforceConfig

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("_one_torch_thread")

SMALL = ReinforceConfig(n_epochs=15)


@pytest.fixture(scope="module")
def fitted_full(_learner_data):
    return SMALL.create(_learner_data.arms).fit(_learner_data.full)


@pytest.mark.parametrize("feedback", ["full", "bandit"])
def test_recovers_most_of_the_oracle(_learner_data, fitted_full, feedback):
    if feedback == "full":
        policy = fitted_full
    else:
        policy = SMALL.create(_learner_data.arms).fit(_learner_data.bandit)
    probs = policy.probabilities(_learner_data.test_features)
    assert probs.shape == (len(_learner_data.test_features), len(_learner_data.arms)) and probs.dtype == np.float64
    assert set(np.unique(probs)) <= {0.0, 1.0}  # greedy: one-hot rows
    assert _learner_data.value(probs) >= 0.8 * _learner_data.oracle_value
    assert policy.training_metrics_["steps"] == 15 * 7


def test_sampled_probabilities_follow_the_temperature(_learner_data, fitted_full, tmp_path):
    fitted_full.save(tmp_path / "m")
    x = _learner_data.test_features[:20]
    warm = ReinforceConfig(greedy=False, temperature=1.0)
    hot = ReinforceConfig(greedy=False, temperature=100.0)
    # the temperature is an inference setting: apply it to the same weights
    p1 = type(fitted_full).load(tmp_path / "m", _learner_data.arms)
    p1.config = warm
    p100 = type(fitted_full).load(tmp_path / "m", _learner_data.arms)
    p100.config = hot
    a, b = p1.probabilities(x), p100.probabilities(x)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-12)
    assert (a > 0).all() and a.max(axis=1).mean() > b.max(axis=1).mean()
    assert np.allclose(b, 0.25, atol=0.05)
    np.testing.assert_array_equal(a.argmax(axis=1), fitted_full.probabilities(x).argmax(axis=1))


def test_not_fitted(_learner_data):
    policy = SMALL.create(_learner_data.arms)
    with pytest.raises(NotFittedError, match="not fitted"):
        policy.probabilities(_learner_data.test_features)
    with pytest.raises(NotFittedError, match="not fitted"):
        policy.save("/nonexistent")


def test_save_load_same_probabilities(_learner_data, fitted_full, tmp_path):
    fitted_full.save(tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["model.safetensors", "policy.json"]
    meta = json.loads((tmp_path / "run" / "policy.json").read_text())
    assert meta["architecture"]["layers"] == [8, 64, 4]
    loaded = SMALL.load_policy(tmp_path / "run", _learner_data.arms)
    x = _learner_data.test_features
    np.testing.assert_array_equal(loaded.logits(x), fitted_full.logits(x))
    np.testing.assert_array_equal(loaded.probabilities(x), fitted_full.probabilities(x))
    with pytest.raises(ValueError, match="trained on arms"):
        SMALL.load_policy(tmp_path / "run", _learner_data.arms[:2])
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        SMALL.load_policy(tmp_path, _learner_data.arms)


def test_deterministic_under_a_seed(_learner_data):
    cfg = ReinforceConfig(n_epochs=2, greedy=False)
    x = _learner_data.test_features[:30]
    a = cfg.create(_learner_data.arms).fit(_learner_data.full).probabilities(x)
    b = cfg.create(_learner_data.arms).fit(_learner_data.full).probabilities(x)
    c = ReinforceConfig(n_epochs=2, greedy=False, seed=1).create(_learner_data.arms).fit(_learner_data.full).probabilities(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_resume_from_a_checkpoint_continues_exactly(_learner_data, tmp_path):
    cfg = ReinforceConfig(n_epochs=4, checkpoint_every=5, keep_checkpoints=100, greedy=False)
    x = _learner_data.test_features
    straight = cfg.create(_learner_data.arms).fit(_learner_data.bandit, checkpoint_dir=tmp_path / "a")
    steps = sorted(p.name for p in (tmp_path / "a").glob("ckpt-*.json"))
    assert steps[0] == "ckpt-000000005.json" and steps[-1] == "ckpt-000000028.json"
    # an interrupted run: only the checkpoint of step 10 survived
    (tmp_path / "b").mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(tmp_path / "a" / f"ckpt-000000010{suffix}", tmp_path / "b")
    resumed = cfg.create(_learner_data.arms).fit(_learner_data.bandit, checkpoint_dir=tmp_path / "b")
    np.testing.assert_array_equal(resumed.logits(x), straight.logits(x))
    # a half-written checkpoint (no JSON yet) is ignored
    (tmp_path / "b" / "ckpt-000000999.safetensors").write_bytes(b"partial")
    # training further: raise n_epochs and fit again on the same folder
    longer = ReinforceConfig(n_epochs=6, checkpoint_every=5, keep_checkpoints=2, greedy=False)
    more = longer.create(_learner_data.arms).fit(_learner_data.bandit, checkpoint_dir=tmp_path / "b")
    direct = longer.create(_learner_data.arms).fit(_learner_data.bandit)
    np.testing.assert_array_equal(more.logits(x), direct.logits(x))
    assert len(list((tmp_path / "b").glob("ckpt-*.json"))) == 2


def test_refuses_a_checkpoint_of_another_run(_learner_data, tmp_path):
    ReinforceConfig(n_epochs=1).create(_learner_data.arms).fit(_learner_data.full, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="another config or other data"):
        ReinforceConfig(n_epochs=1, learning_rate=0.5).create(_learner_data.arms).fit(_learner_data.full, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="another config or other data"):
        ReinforceConfig(n_epochs=1).create(_learner_data.arms).fit(_learner_data.bandit, checkpoint_dir=tmp_path)


def test_nan_rewards_are_skipped(_learner_data):
    d = _learner_data.full
    rewards = d.rewards.copy()
    rewards[:, 3] = np.nan  # arm "lookup" never measured
    rewards[:5] = np.nan  # five prompts with no measurement at all
    data = TrainingData(features=d.features, arm_names=d.arm_names, query_ids=d.query_ids, rewards=rewards)
    policy = ReinforceConfig(n_epochs=3).create(_learner_data.arms).fit(data)
    assert policy.training_metrics_["training_rows"] == d.n - 5
    assert np.isfinite(policy.training_metrics_["final_loss"])
    empty = TrainingData(features=d.features, arm_names=d.arm_names, query_ids=d.query_ids, rewards=np.full_like(rewards, np.nan))
    with pytest.raises(ValueError, match="no usable prompt"):
        ReinforceConfig(n_epochs=1).create(_learner_data.arms).fit(empty)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"hidden_sizes": (0,)}, r"hidden_sizes must be ints >= 1"),
        ({"learning_rate": 0.0}, r"learning_rate must be > 0; got 0.0"),
        ({"batch_size": 0}, r"batch_size must be an int >= 1; got 0"),
        ({"n_epochs": 1.5}, r"n_epochs must be an int >= 1; got 1.5"),
        ({"baseline_momentum": 1.0}, r"baseline_momentum must be in \[0, 1\)"),
        ({"temperature": -1.0}, r"temperature must be > 0"),
        ({"weight_clip": 0}, r"weight_clip must be > 0"),
        ({"seed": -3}, r"seed must be an int >= 0; got -3"),
    ],
)
def test_bad_config(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ReinforceConfig(**kwargs)


def test_bad_fit_input(_learner_data, fitted_full):
    d = _learner_data.full
    other = TrainingData(features=d.features, arm_names=("w", "x", "y", "z"), query_ids=d.query_ids, rewards=d.rewards)
    with pytest.raises(ValueError, match=r"training data arms \['w', 'x', 'y', 'z'\] differ"):
        SMALL.create(_learner_data.arms).fit(other)
    with pytest.raises(ValueError, match=r"features must have shape \(n, 8\); got shape \(3, 5\)"):
        fitted_full.probabilities(np.zeros((3, 5)))


def test_standardize_is_saved_with_the_weights(_learner_data, tmp_path):
    cfg = ReinforceConfig(n_epochs=3, standardize=True, greedy=False)
    policy = cfg.create(_learner_data.arms).fit(_learner_data.full)
    np.testing.assert_allclose(policy.feature_mean_, _learner_data.full.features.mean(axis=0), atol=1e-5)
    plain = ReinforceConfig(n_epochs=3, greedy=False).create(_learner_data.arms).fit(_learner_data.full)
    assert (plain.feature_mean_ == 0).all() and (plain.feature_scale_ == 1).all()
    policy.save(tmp_path)
    loaded = cfg.load_policy(tmp_path, _learner_data.arms)
    np.testing.assert_array_equal(loaded.probabilities(_learner_data.test_features), policy.probabilities(_learner_data.test_features))
