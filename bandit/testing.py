"""Test support shared by every policy: the contract suite and simulated data where the answer is known.

``check_policy(config, data_full, data_bandit, tmp_path)`` is the policy analogue of
scikit-learn's ``check_estimator``: every registered policy runs it (tests/bandit/test_contract.py),
so a new backend gets the whole suite for free. It raises ``PolicyContractError`` (an
``AssertionError``) naming the broken promise.

``simulated_training_data`` and ``write_simulated_log`` build worlds with ``n_domains`` domains
where one arm is clearly best in each domain (arm ``d % n_arms`` in domain ``d``), so a learner
that reads the prompt can approach the oracle while every single arm falls short.
"""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bandit.data import TrainingData
from bandit.policy import NotFittedError, QueryKeyedPolicy, policy_act, policy_probabilities


class PolicyContractError(AssertionError):
    """A policy broke a promise of the ``Policy`` protocol; the message says which and how."""


# -- simulated worlds -------------------------------------------------------------------------------
def _world(n: int, n_arms: int, n_domains: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(domains int64 (n,), expected rewards float64 (n, n_arms), realised rewards float64 (n, n_arms))."""
    if n_arms < 2 or n_domains < 1 or n < 1:
        raise ValueError(f"need n >= 1, n_arms >= 2, n_domains >= 1; got n={n}, n_arms={n_arms}, n_domains={n_domains}")
    means = rng.uniform(0.1, 0.5, (n_domains, n_arms))
    means[np.arange(n_domains), np.arange(n_domains) % n_arms] = 0.9  # one clearly best arm per domain
    domains = rng.integers(0, n_domains, n)
    expected = means[domains]
    return domains, expected, expected + noise * rng.standard_normal(expected.shape)


def simulated_training_data(n: int = 300, n_arms: int = 3, n_domains: int = 3, seed: int = 0, *,
                            feedback: str = "full", n_features: int = 8, feature_noise: float = 0.3,
                            reward_noise: float = 0.05) -> TrainingData:
    """A ``TrainingData`` whose features reveal the domain with noise; one arm is best per domain.

    Features float32 (n, n_features): the first ``n_domains`` columns are the domain's one-hot,
    every column gets Gaussian ``feature_noise``. ``feedback="full"`` gives every arm's reward;
    ``"bandit"`` gives the same world (same seed: same features and rewards) logged by a
    non-uniform random policy (half uniform, half a per-prompt Dirichlet draw) with its exact
    propensities.
    """
    if feedback not in ("full", "bandit"):
        raise ValueError(f"feedback must be 'full' or 'bandit'; got {feedback!r}")
    if n_features < n_domains:
        raise ValueError(f"n_features ({n_features}) must be >= n_domains ({n_domains})")
    rng = np.random.default_rng(seed)
    domains, _, rewards = _world(n, n_arms, n_domains, rng, reward_noise)
    x = feature_noise * rng.standard_normal((n, n_features))
    x[np.arange(n), domains] += 1.0
    qids = tuple(f"q{i:05d}" for i in range(n))
    names = tuple(f"arm{a}" for a in range(n_arms))
    labels = tuple(f"d{d}" for d in domains)
    if feedback == "full":
        return TrainingData(features=x.astype(np.float32), arm_names=names, query_ids=qids, rewards=rewards, domains=labels)
    logging = 0.5 / n_arms + 0.5 * rng.dirichlet(np.ones(n_arms), n)
    cum = np.cumsum(logging, axis=1)
    actions = np.minimum((rng.random(n)[:, None] * cum[:, -1:] >= cum).sum(axis=1), n_arms - 1)
    rows = np.arange(n)
    return TrainingData(features=x.astype(np.float32), arm_names=names, query_ids=qids, actions=actions,
                        observed=rewards[rows, actions], propensities=logging[rows, actions], domains=labels)


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    letters = np.array(list(string.ascii_lowercase))
    return ["".join(rng.choice(letters, rng.integers(3, 9))) for _ in range(size)]


def simulated_outcomes(n_prompts: int = 200, n_arms: int = 3, n_domains: int = 3, seed: int = 0, *,
                       test_fraction: float = 0.3, reward_noise: float = 0.05, validation_fraction: float = 0.0,
                       topic_share: float = 0.5) -> pd.DataFrame:
    """An outcomes frame (ready for ``Log.append``) over text prompts; one arm best per domain.

    Each domain has its own vocabulary of made-up words; a prompt is 8 to 16 words, each from
    its domain's vocabulary with probability ``topic_share``, else from a shared one. Arms are
    ``arm0..``; the best arm of domain ``d`` is ``arm{d % n_arms}`` (mean reward 0.9, the others
    0.1 to 0.5). Splits: ``test`` with probability ``test_fraction``, ``validation`` with
    ``validation_fraction``, else ``train``.
    """
    rng = np.random.default_rng(seed)
    domains, _, rewards = _world(n_prompts, n_arms, n_domains, rng, reward_noise)
    shared = _vocabulary(rng, 80)
    topical = [_vocabulary(rng, 40) for _ in range(n_domains)]
    prompts = []
    for d in domains:
        n_words = int(rng.integers(8, 17))
        pick = rng.random(n_words) < topic_share
        prompts.append(" ".join(rng.choice(topical[d]) if p else rng.choice(shared) for p in pick))
    arms = [f"arm{a}" for a in range(n_arms)]
    qids = [f"q{i:05d}" for i in range(n_prompts)]
    u = rng.random(n_prompts)
    splits = np.where(u < test_fraction, "test", np.where(u < test_fraction + validation_fraction, "validation", "train"))
    return pd.DataFrame({
        "query_id": np.repeat(qids, n_arms),
        "prompt": np.repeat(prompts, n_arms),
        "domain": np.repeat([f"domain{d}" for d in domains], n_arms),
        "split": np.repeat(splits, n_arms),
        "arm": np.tile(arms, n_prompts),
        "reward": rewards.reshape(-1),
    })


def write_simulated_log(path: str | Path, n_prompts: int = 200, n_arms: int = 3, n_domains: int = 3, seed: int = 0, *,
                        decisions: bool = True, test_fraction: float = 0.3, validation_fraction: float = 0.0):
    """Write a log at ``path`` with ``simulated_outcomes`` and, when ``decisions``, uniform-logged decisions.

    The decisions come from ``logging_data.simulate.simulate_decisions`` with a uniform logging
    policy (policy_id ``uniform``). Returns the ``logging_data.Log``.
    """
    from logging_data import LogMetadata, RewardDefinition, create_log
    from logging_data.simulate import UniformLogging, simulate_decisions

    outcomes = simulated_outcomes(n_prompts, n_arms, n_domains, seed, test_fraction=test_fraction,
                                  validation_fraction=validation_fraction)
    arms = simulated_arms([f"arm{a}" for a in range(n_arms)])
    meta = LogMetadata(arms=arms, reward=RewardDefinition(kind="custom", metric="", description="simulated: one arm best per domain"))
    log = create_log(path, meta)
    log.append("outcomes", outcomes)
    if decisions:
        frame = simulate_decisions(outcomes, meta.arm_names, UniformLogging(), np.random.default_rng([seed, 1]), policy_id="uniform")
        log.append("decisions", frame)
    return log


# -- the contract suite -----------------------------------------------------------------------------
def _fail(config: Any, message: str) -> None:
    raise PolicyContractError(f"policy {type(config).name!r} ({type(config).__name__}): {message}")


def _probs(policy: Any, data: TrainingData) -> np.ndarray:
    return policy_probabilities(policy, data.features, data.query_ids)


def _check_probabilities(config: Any, probs: Any, data: TrainingData, where: str) -> np.ndarray:
    if not isinstance(probs, np.ndarray):
        _fail(config, f"{where}: probabilities must be a numpy array; got {type(probs).__name__}")
    if probs.dtype != np.float64:
        _fail(config, f"{where}: probabilities must be float64; got {probs.dtype}")
    if probs.shape != (data.n, data.n_arms):
        _fail(config, f"{where}: probabilities must have shape (n, n_arms) = {(data.n, data.n_arms)}; got {probs.shape}")
    if not np.isfinite(probs).all():
        _fail(config, f"{where}: {int((~np.isfinite(probs)).sum())} probabilities are NaN or infinite")
    if (probs < 0).any():
        _fail(config, f"{where}: {int((probs < 0).sum())} probabilities are negative (min {probs.min()})")
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if bad.size:
        _fail(config, f"{where}: {bad.size} rows do not sum to 1 (first: row {bad[0]} sums to {sums[bad[0]]!r})")
    return probs


def _check_fitted(config: Any, arms: tuple, data: TrainingData, tmp_path: Path, tag: str) -> None:
    policy = config.create(arms)
    try:
        _probs(policy, data)
    except NotFittedError:
        pass
    except Exception as exc:  # noqa: BLE001 - the contract is precisely which error
        _fail(config, f"{tag}: using the policy before fit must raise NotFittedError; raised {type(exc).__name__}: {exc}")
    else:
        _fail(config, f"{tag}: using the policy before fit must raise NotFittedError; it returned probabilities")

    fitted = policy.fit(data, checkpoint_dir=tmp_path / f"{tag}-checkpoints")
    if fitted is not policy:
        _fail(config, f"{tag}: fit must return the policy itself")
    if tuple(policy.arm_names) != tuple(data.arm_names):
        _fail(config, f"{tag}: arm_names {policy.arm_names!r} differ from the data's {data.arm_names!r}")
    probs = _check_probabilities(config, _probs(policy, data), data, f"{tag} fit")

    twin = config.create(arms).fit(data, checkpoint_dir=tmp_path / f"{tag}-checkpoints-twin")
    twin_probs = _probs(twin, data)
    if not np.allclose(probs, twin_probs, rtol=0, atol=1e-9):
        gap = float(np.abs(probs - twin_probs).max())
        _fail(config, f"{tag}: two fits with the same config (seed {config.seed}) disagree by up to {gap:.3g}")

    folder = tmp_path / f"{tag}-saved"
    folder.mkdir(parents=True, exist_ok=True)
    policy.save(folder)
    loaded = config.load_policy(folder, arms)
    loaded_probs = _check_probabilities(config, _probs(loaded, data), data, f"{tag} after save/load")
    if not np.allclose(probs, loaded_probs, rtol=0, atol=1e-7):
        gap = float(np.abs(probs - loaded_probs).max())
        _fail(config, f"{tag}: save -> load changes probabilities by up to {gap:.3g}")

    actions, props = policy_act(policy, data.features, np.random.default_rng(7), data.query_ids)
    actions, props = np.asarray(actions), np.asarray(props)
    if actions.shape != (data.n,) or props.shape != (data.n,):
        _fail(config, f"{tag}: act must return (actions (n,), propensities (n,)); got shapes {actions.shape} and {props.shape}")
    if not np.issubdtype(actions.dtype, np.integer) or actions.min() < 0 or actions.max() >= data.n_arms:
        _fail(config, f"{tag}: act's actions must be integer arm indices in [0, {data.n_arms}); got {actions.dtype} in [{actions.min()}, {actions.max()}]")
    expected = probs[np.arange(data.n), actions]
    if not np.allclose(props, expected, rtol=0, atol=1e-12):
        i = int(np.argmax(np.abs(props - expected)))
        _fail(config, f"{tag}: act's propensities must equal the probabilities of the sampled arms; row {i}: {props[i]!r} vs {expected[i]!r}")
    if (props <= 0).any():
        _fail(config, f"{tag}: act sampled an arm with probability 0 in {int((props <= 0).sum())} rows")
    again, _ = policy_act(policy, data.features, np.random.default_rng(7), data.query_ids)
    if not np.array_equal(actions, np.asarray(again)):
        _fail(config, f"{tag}: act with equally seeded generators chose different arms")


def simulated_arms(arm_names: Any) -> tuple:
    """``logging_data.Arm`` objects for ``arm_names``: drafts of growing cost with a size attribute."""
    from logging_data import Arm

    return tuple(Arm(str(n), kind="draft", cost=0.1 * (i + 1), attrs={"size_m": 10 * (i + 1)}) for i, n in enumerate(arm_names))


def check_policy(config: Any, data_full: TrainingData, data_bandit: TrainingData | None, tmp_path: str | Path,
                 arms: Any = None) -> None:
    """Run the ``Policy`` contract on ``config``'s policy; raise ``PolicyContractError`` on the first broken promise.

    Checked: the config is a frozen dataclass with a registry ``name``, ``featurizer`` and ``seed``;
    using a policy before ``fit`` raises ``NotFittedError``; after ``fit`` the probabilities are
    float64 (n, n_arms), finite, non-negative, rows summing to 1; two fits of the same config
    agree; save -> load gives the same probabilities; ``act``'s propensities are exactly the
    probabilities of the sampled arms and reproducible under an equally seeded generator. Run on
    full-information data, and on bandit feedback when given: a policy whose ``feedback`` ClassVar
    excludes a kind must refuse it with ValueError. ``arms`` (``logging_data.Arm`` objects in the
    data's arm order) default to ``simulated_arms(data_full.arm_names)``.
    """
    tmp_path = Path(tmp_path)
    if not dataclasses.is_dataclass(config) or not type(config).__dataclass_params__.frozen:  # type: ignore[attr-defined]
        _fail(config, "the config must be a frozen dataclass")
    for attr in ("name", "featurizer", "seed"):
        if not hasattr(config, attr):
            _fail(config, f"the config has no {attr!r}")
    feedback = tuple(getattr(type(config), "feedback", ("full", "bandit")))
    arms = tuple(arms) if arms is not None else simulated_arms(data_full.arm_names)
    if tuple(a.name for a in arms) != tuple(data_full.arm_names):
        raise ValueError(f"check_policy: arms {[a.name for a in arms]} differ from the data's {list(data_full.arm_names)}")
    for tag, data in (("full", data_full), ("bandit", data_bandit)):
        if data is None:
            continue
        if tag in feedback:
            _check_fitted(config, arms, data, tmp_path, tag)
        else:
            try:
                config.create(arms).fit(data, checkpoint_dir=tmp_path / f"{tag}-refused")
            except ValueError:
                continue
            _fail(config, f"declares feedback {feedback} yet fit accepted {tag} feedback instead of raising ValueError")
    if isinstance(config.create(arms), QueryKeyedPolicy) and not getattr(type(config), "hindsight", False):
        _fail(config, "answers by query_id but does not declare hindsight = True")


def take_rows(data: TrainingData, rows: Any) -> TrainingData:
    """The rows ``rows`` (int indices or a bool mask (n,)) of ``data`` as a new ``TrainingData``."""
    idx = np.arange(data.n)[rows]
    pick = lambda arr: None if arr is None else arr[idx]  # noqa: E731
    return TrainingData(
        features=data.features[idx], arm_names=data.arm_names, query_ids=tuple(data.query_ids[i] for i in idx),
        rewards=pick(data.rewards), actions=pick(data.actions), observed=pick(data.observed),
        propensities=pick(data.propensities), domains=tuple(data.domains[i] for i in idx) if data.domains else (),
    )
