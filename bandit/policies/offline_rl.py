"""Discrete offline RL with d3rlpy: DiscreteCQL and DiscreteBCQ on one-step episodes.

Choosing a draft for a prompt is a one-step episode: the observation is the prompt's features,
the action is the arm, the reward is the log's reward, and every transition is terminal (there
is no next state, so no bootstrapping; the Q-function learns the expected reward of each arm).

- full information: one transition per (prompt, arm) with a measured reward: offline data with
  full coverage of the arms (NaN rewards are left out);
- bandit feedback: the logged transitions (prompt, chosen arm, observed reward). The logging
  propensities are not used: CQL's conservative penalty and BCQ's behaviour-cloning filter are
  these algorithms' own answers to limited coverage.

Probabilities are ``softmax(Q(x, .) / tau)`` (float64, rows sum to 1), so the off-policy
estimators can score the policy; ``tau`` near 0 approaches the greedy policy. For BCQ the
softmax runs only over the arms its imitator allows (those whose behaviour probability is
at least ``action_flexibility`` times the most likely arm's), as BCQ's own greedy rule does.

Training loop: d3rlpy's ``fit`` samples mini-batches from numpy's global random state. To keep
randomness explicit this module drives the algorithm through its public ``update(batch)`` with
``TransitionMiniBatch`` objects built from mini-batches drawn by a ``numpy.random.Generator``
seeded by ``(seed, step)``; the networks are initialised inside
``torch.random.fork_rng`` with ``torch.manual_seed(seed)``, which restores torch's global
random state on exit. So a fit is reproducible from ``seed`` and leaves global state untouched,
and a fit resumed from a checkpoint continues exactly as an uninterrupted one.

Saving (the non-pickle route): d3rlpy's ``save`` / ``load_learnable`` pickle a dict (and
``save_model`` / ``load_model`` call ``torch.save`` / ``torch.load``, also pickles), so neither
is used. The artifact is d3rlpy's own JSON config format instead
(``LearnableConfigWithShape.serialize()``, the ``params.json`` that ``Algo.from_json`` reads)
in ``d3rlpy_params.json``, plus the state dicts of the algorithm's torch modules
(``algo.impl.modules``) and the feature standardisation in ``model.safetensors``, plus
``policy.json`` (our config and arms). Loading rebuilds the algorithm with
``LearnableConfigWithShape.deserialize(...).create("cpu:0")`` and loads the tensors (strict).
Checkpoints (``fit(data, checkpoint_dir=DIR)``) add the optimizer state as safetensors.

``d3rlpy`` (about 6 s to import) and torch are imported inside the functions that use them,
d3rlpy through ``_d3rlpy()``: it imports Gym, which prints a multi-line "unmaintained" banner on
stderr at import; that import alone runs with its printed text dropped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from bandit.policies import _torch_io
from bandit.policies.backend import BackendConfig, BackendPolicy
from bandit.policy import NotFittedError, softmax

def _d3rlpy() -> Any:
    """The ``d3rlpy`` module, imported after ``_quiet_gym()``."""
    if "d3rlpy" not in sys.modules:
        _quiet_gym()
    import d3rlpy

    return d3rlpy


def _quiet_gym() -> None:
    """Import Gym (which d3rlpy imports) with its "unmaintained" banner dropped
    (``logging_data.console.without_stderr``); nothing when it is imported already or absent."""
    if "gym" in sys.modules:
        return
    import importlib

    from logging_data.console import without_stderr

    try:
        without_stderr(lambda: importlib.import_module("gym"))
    except ImportError:  # d3rlpy without gym installed: nothing to silence
        pass


MODEL_FILE = "model.safetensors"
D3RLPY_FILE = "d3rlpy_params.json"
META_FILE = "policy.json"
DEVICE = "cpu:0"
# settings that do not change the training trajectory
_NOT_TRAINING = ("n_steps", "tau", "checkpoint_every", "keep_checkpoints")


@dataclass(frozen=True)
class _OfflineRLConfig(BackendConfig):
    """Settings shared by the d3rlpy policies."""

    name: ClassVar[str] = ""
    tuple_fields: ClassVar[tuple[str, ...]] = ("hidden_units",)
    featurizer: str = "hashed"
    seed: int = 0  # network initialisation and mini-batch sampling
    n_steps: int = 1000  # gradient steps
    batch_size: int = 64  # transitions per gradient step
    learning_rate: float = 1e-3  # Adam's step size (d3rlpy's default 6.25e-5 is tuned for Atari)
    hidden_units: tuple[int, ...] = (64, 64)  # widths of the Q-network's (and imitator's) encoder
    target_update_interval: int = 100  # steps between target-network syncs (unused by terminal targets)
    tau: float = 0.05  # inference: probabilities = softmax(Q / tau)
    standardize: bool = False  # rescale features to training mean 0 / sd 1 (off: featurizers give L2-normalised rows)
    checkpoint_every: int = 250  # steps between checkpoints (when fit gets a checkpoint_dir)
    keep_checkpoints: int = 2  # newest checkpoints kept in checkpoint_dir

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_units", tuple(self.hidden_units))
        for message in self._problems():
            raise ValueError(f"{type(self).__name__}: {message}")

    def _problems(self) -> list[str]:
        def positive_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 1

        checks = [
            (isinstance(self.seed, int) and self.seed >= 0, f"seed must be an int >= 0; got {self.seed!r}"),
            (positive_int(self.n_steps), f"n_steps must be an int >= 1; got {self.n_steps!r}"),
            (positive_int(self.batch_size), f"batch_size must be an int >= 1; got {self.batch_size!r}"),
            (self.learning_rate > 0, f"learning_rate must be > 0; got {self.learning_rate}"),
            (len(self.hidden_units) >= 1 and all(positive_int(h) for h in self.hidden_units), f"hidden_units must be one or more ints >= 1; got {self.hidden_units!r}"),
            (positive_int(self.target_update_interval), f"target_update_interval must be an int >= 1; got {self.target_update_interval!r}"),
            (self.tau > 0, f"tau must be > 0; got {self.tau}"),
            (positive_int(self.checkpoint_every), f"checkpoint_every must be an int >= 1; got {self.checkpoint_every!r}"),
            (positive_int(self.keep_checkpoints), f"keep_checkpoints must be an int >= 1; got {self.keep_checkpoints!r}"),
        ]
        return [m for ok, m in checks if not ok]

    def d3rlpy_config(self) -> Any:
        """The d3rlpy config object this config trains (built on use: imports d3rlpy)."""
        raise NotImplementedError

    def _common_d3rlpy_kwargs(self) -> dict:
        _d3rlpy()
        from d3rlpy.models.encoders import VectorEncoderFactory

        return {
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "encoder_factory": VectorEncoderFactory(hidden_units=list(self.hidden_units)),
            "target_update_interval": self.target_update_interval,
        }

    def load_policy(self, path: str | os.PathLike, arms: Sequence[Any]) -> "OfflineRLPolicy":
        return OfflineRLPolicy.load(path, arms, type(self))


@dataclass(frozen=True)
class DiscreteCQLConfig(_OfflineRLConfig):
    """Discrete conservative Q-learning: Q regression plus a penalty on unseen arms' Q."""

    name: ClassVar[str] = "cql"
    # weight of the conservative penalty (logsumexp Q - Q of the logged arm). d3rlpy defaults to 1.0
    # for clipped Atari returns; with one-step rewards in [0, 1] that penalty swamps the reward
    # differences between arms, so the default here is smaller.
    alpha: float = 0.1

    def _problems(self) -> list[str]:
        extra = [] if self.alpha >= 0 else [f"alpha must be >= 0; got {self.alpha}"]
        return super()._problems() + extra

    def d3rlpy_config(self) -> Any:
        d3rlpy = _d3rlpy()
        return d3rlpy.algos.DiscreteCQLConfig(alpha=self.alpha, **self._common_d3rlpy_kwargs())


@dataclass(frozen=True)
class DiscreteBCQConfig(_OfflineRLConfig):
    """Discrete batch-constrained Q-learning: Q over the arms a behaviour-cloning model allows."""

    name: ClassVar[str] = "bcq"
    action_flexibility: float = 0.3  # allow arms with behaviour probability >= this x the most likely arm's
    beta: float = 0.5  # regularisation of the imitator's logits

    def _problems(self) -> list[str]:
        extra = []
        if not 0 < self.action_flexibility <= 1:
            extra.append(f"action_flexibility must be in (0, 1]; got {self.action_flexibility}")
        if self.beta < 0:
            extra.append(f"beta must be >= 0; got {self.beta}")
        return super()._problems() + extra

    def d3rlpy_config(self) -> Any:
        d3rlpy = _d3rlpy()
        return d3rlpy.algos.DiscreteBCQConfig(action_flexibility=self.action_flexibility, beta=self.beta, **self._common_d3rlpy_kwargs())



def _transitions(data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row of the prompt, arm id, reward) of every one-step transition in ``data``."""
    if data.is_full_information:
        rows, actions = np.nonzero(np.isfinite(data.rewards))
        return rows, actions.astype(np.int64), data.rewards[rows, actions]
    return np.arange(data.n), data.actions, data.observed


def _mini_batch(x: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> Any:
    """A d3rlpy ``TransitionMiniBatch`` of terminal one-step transitions."""
    _d3rlpy()
    from d3rlpy.dataset import TransitionMiniBatch

    b = x.shape[0]
    ones = np.ones((b, 1), dtype=np.float32)
    return TransitionMiniBatch(
        observations=x,
        actions=actions.reshape(b, 1).astype(np.float32),
        rewards=rewards.reshape(b, 1).astype(np.float32),
        next_observations=np.zeros_like(x),
        next_actions=np.zeros((b, 1), dtype=np.float32),
        terminals=ones,
        intervals=ones,
        transitions=[],
    )


def _modules(algo: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(torch modules, optimizer wrappers) of a built d3rlpy algorithm, by field name."""
    from torch import nn

    mods, optims = {}, {}
    for f in dataclasses.fields(algo.impl.modules):
        v = getattr(algo.impl.modules, f.name)
        if isinstance(v, nn.Module):
            mods[f.name] = v
        elif hasattr(v, "optim"):
            optims[f.name] = v
    return mods, optims


def _build(d3_config: Any, n_features: int, n_arms: int, seed: int) -> Any:
    """A d3rlpy algorithm with initialised networks, seeded without touching global random state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        algo = d3_config.create(device=DEVICE)
        algo.create_impl((n_features,), n_arms)
    return algo


class OfflineRLPolicy(BackendPolicy):
    """A d3rlpy discrete Q-learner over a fixed, ordered list of arms (see the module docstring)."""

    config: _OfflineRLConfig

    # -- training ----------------------------------------------------------------------------
    def _fit(self, data: Any, checkpoint_dir: str | os.PathLike | None) -> None:
        from tqdm.auto import tqdm

        cfg = self.config
        rows, actions, rewards = _transitions(data)
        if rows.size == 0:
            raise ValueError("training data has no transition (every reward is NaN, or there are no rows)")
        if not np.isfinite(data.features).all():
            raise ValueError("features must be finite; found NaN or inf")
        mean, scale = _torch_io.standardisation(data.features[np.unique(rows)], cfg.standardize)
        x = (data.features - mean) / scale

        algo = _build(cfg.d3rlpy_config(), x.shape[1], len(self.arms), cfg.seed)
        mods, optims = _modules(algo)
        fingerprint = self._fingerprint(data)
        step, losses = 0, []
        ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        resumed = _torch_io.resume_checkpoint(ckpt_dir, fingerprint, f"a {cfg.name} run")
        if resumed is not None:
            tensors, meta = resumed
            for k, m in mods.items():
                _torch_io.load_module(m, tensors, k)
            for k, o in optims.items():
                o.optim.load_state_dict(_torch_io.optimizer_from_tensors(tensors, meta["optimizers"][k], k))
            step, losses = int(meta["step"]), list(meta["losses"])
            algo.set_grad_step(step)

        with tqdm(total=cfg.n_steps, initial=min(step, cfg.n_steps), desc=cfg.name, unit="step", file=sys.stderr, disable=None, leave=False) as bar:
            while step < cfg.n_steps:
                pick = np.random.default_rng([cfg.seed, 1, step]).integers(rows.size, size=cfg.batch_size)
                metrics = algo.update(_mini_batch(x[rows[pick]], actions[pick], rewards[pick]))
                losses.append(float(metrics["loss"]))
                step += 1
                bar.update(1)
                if ckpt_dir is not None and (step % cfg.checkpoint_every == 0 or step == cfg.n_steps):
                    self._checkpoint(ckpt_dir, step, mods, optims, losses, fingerprint)
        self.algo_ = algo
        _torch_io.set_scaling(self, mean, scale, x.shape[1])
        self.training_metrics_ = {
            "steps": int(step),
            "transitions": int(rows.size),
            "final_loss": losses[-1] if losses else None,
            "mean_loss_last_100": float(np.mean(losses[-100:])) if losses else None,
        }

    def _fingerprint(self, data: Any) -> str:
        settings = {k: v for k, v in self.config.to_json().items() if k not in _NOT_TRAINING}
        settings["policy"] = self.config.name
        digest = _torch_io.data_fingerprint(data.features, data.rewards, data.actions, data.observed)
        return _torch_io.data_fingerprint(np.frombuffer(json.dumps(settings, sort_keys=True).encode() + digest.encode(), dtype=np.uint8))

    def _checkpoint(self, directory: Path, step: int, mods: dict, optims: dict, losses: list, fingerprint: str) -> None:
        tensors: dict[str, Any] = {}
        opt_meta: dict[str, Any] = {}
        for k, m in mods.items():
            tensors.update(_torch_io.module_tensors(m, k))
        for k, o in optims.items():
            t, opt_meta[k] = _torch_io.optimizer_to_tensors(o.optim.state_dict(), k)
            tensors.update(t)
        meta = {"fingerprint": fingerprint, "losses": losses, "optimizers": opt_meta}
        _torch_io.write_checkpoint(directory, step, tensors, meta, self.config.keep_checkpoints)

    # -- inference ---------------------------------------------------------------------------
    def _scaled(self, features: np.ndarray) -> np.ndarray:
        if not hasattr(self, "algo_"):
            raise NotFittedError(f"{type(self.config).__name__} policy is not fitted; call fit(data) or load_policy(path, arms) first")
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features_:
            raise ValueError(f"features must have shape (n, {self.n_features_}); got shape {x.shape}")
        return (x - self.feature_mean_) / self.feature_scale_

    def q_values(self, features: np.ndarray) -> np.ndarray:
        """Q(x, a) for every arm: float64 (n, n_arms), for float features (n, d)."""
        x = self._scaled(features)
        n, k = x.shape[0], len(self.arms)
        if n == 0:
            return np.zeros((0, k))
        return np.stack([self.algo_.predict_value(x, np.full(n, a, dtype=np.int64)) for a in range(k)], axis=1).astype(np.float64)

    def allowed(self, features: np.ndarray) -> np.ndarray:
        """bool (n, n_arms): the arms the policy may choose (all, except where BCQ's imitator forbids)."""
        x = self._scaled(features)
        if not isinstance(self.config, DiscreteBCQConfig):
            return np.ones((x.shape[0], len(self.arms)), dtype=bool)
        import torch

        with torch.no_grad():
            logits = self.algo_.impl.modules.imitator(torch.from_numpy(x)).logits
            logp = torch.log_softmax(logits, dim=1).double().numpy()
        return logp - logp.max(axis=1, keepdims=True) > math.log(self.config.action_flexibility)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """softmax(Q / tau) over the allowed arms, float64 (n, n_arms); rows sum to 1."""
        q = self.q_values(features)
        mask = self.allowed(features)
        mask[~mask.any(axis=1)] = True  # (cannot happen: the most likely arm is always allowed)
        return softmax(np.where(mask, q, -np.inf), self.config.tau)

    # -- artifact ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write ``model.safetensors``, ``d3rlpy_params.json`` and ``policy.json`` into the folder ``path``."""
        _d3rlpy()
        from d3rlpy.base import LearnableConfigWithShape

        if not hasattr(self, "algo_"):
            raise NotFittedError(f"{type(self.config).__name__} policy is not fitted; nothing to save")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        mods, _ = _modules(self.algo_)
        tensors: dict[str, Any] = {}
        for k, m in mods.items():
            tensors.update(_torch_io.module_tensors(m, k))
        tensors.update(_torch_io.scaling_tensors(self))
        _torch_io.write_tensors(path / MODEL_FILE, tensors)
        shaped = LearnableConfigWithShape(observation_shape=(self.n_features_,), action_size=len(self.arms), config=self.algo_.config)
        (path / D3RLPY_FILE).write_text(shaped.serialize(), encoding="utf-8")
        _torch_io.write_json(path / META_FILE, self.saved_meta(d3rlpy_params=D3RLPY_FILE))

    @classmethod
    def load(cls, path: str | os.PathLike, arms: Sequence[Any], config_class: type) -> "OfflineRLPolicy":
        import torch

        _d3rlpy()
        from d3rlpy.base import LearnableConfigWithShape

        path, meta, arms = cls.read_saved(path, arms, (MODEL_FILE, D3RLPY_FILE, META_FILE), META_FILE, config_class.name)
        if meta.get("policy") != config_class.name:
            raise ValueError(f"{path} holds a {meta.get('policy')!r} policy; expected {config_class.name!r}")
        policy = cls(config_class(**meta["config"]), arms)
        shaped = LearnableConfigWithShape.deserialize((path / D3RLPY_FILE).read_text(encoding="utf-8"))
        with torch.random.fork_rng(devices=[]):  # initialisation draws are overwritten below
            algo = shaped.create(device=DEVICE)
        tensors = _torch_io.read_tensors(path / MODEL_FILE)
        mods, _ = _modules(algo)
        for k, m in mods.items():
            _torch_io.load_module(m, tensors, k)
        policy.algo_ = algo
        return _torch_io.restore_scaling(policy, tensors, meta)


_OfflineRLConfig.policy_class = OfflineRLPolicy
