"""``check_estimator``: the contract every registered estimator must meet (after scikit-learn).

The tests run it over ``estimators.registry.ESTIMATORS``, so a new estimator gets the whole
suite by being registered. Each check raises ``AssertionError`` with a message naming the
estimator and the broken promise.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from .base import Estimate, EstimatorBase
from .batch import LoggedBatch
from .diagnostics import SupportWarning


def _fail(est: EstimatorBase, message: str) -> None:
    raise AssertionError(f"estimator {type(est).__name__} ({est.name!r}): {message}")


def random_batch(rng: np.random.Generator, n: int = 300, n_arms: int = 4, with_model: bool = True) -> LoggedBatch:
    """A valid batch with random softmax logging and target policies (every arm supported)."""
    logging = rng.dirichlet(np.ones(n_arms), size=n) * 0.8 + 0.2 / n_arms
    target = rng.dirichlet(np.ones(n_arms) * 0.5, size=n)
    cum = logging.cumsum(axis=1)
    actions = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), n_arms - 1)
    actions[:n_arms] = np.arange(n_arms)
    prop = logging[np.arange(n), actions]
    rewards = rng.normal(0.5, 1.0, n)
    q = rng.normal(0.5, 1.0, (n, n_arms)) if with_model else None
    return LoggedBatch(actions, rewards, prop, target, q)


def logged_batches(with_model: bool = True, same_target: bool = False, max_rows: int = 40, max_arms: int = 5):
    """A hypothesis strategy of valid ``LoggedBatch``es (needs the test extra ``hypothesis``).

    Rewards are drawn by hypothesis in [-100, 100]; logging and target policies are random
    Dirichlet rows from a drawn seed; actions are sampled from the logging policy with exact
    propensities. ``same_target`` makes the target equal to the logging policy;
    ``with_model`` adds a random ``reward_hat``.
    """
    from hypothesis import strategies as st

    @st.composite
    def _batches(draw):
        n = draw(st.integers(1, max_rows))
        k = draw(st.integers(1, max_arms))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        rewards = np.array(draw(st.lists(st.floats(-100, 100, allow_nan=False), min_size=n, max_size=n)), dtype=np.float64)
        logging = rng.dirichlet(np.ones(k), size=n)
        cum = logging.cumsum(axis=1)
        actions = np.minimum((rng.random(n)[:, None] * cum[:, -1:] >= cum).sum(axis=1), k - 1)
        propensities = logging[np.arange(n), actions]
        if same_target:
            target = logging
        else:
            target = rng.dirichlet(np.full(k, draw(st.sampled_from([0.3, 1.0, 10.0]))), size=n)
        q = rng.normal(0, 10, (n, k)) if with_model else None
        return LoggedBatch(actions, rewards, propensities, target, q)

    return _batches()


def check_estimator(estimator: EstimatorBase, seed: int = 0) -> None:
    """Run every contract check on ``estimator``; raises ``AssertionError`` on the first failure."""
    rng = np.random.default_rng(seed)
    for check in CHECKS:
        check(estimator, rng)


def check_settings_dataclass(est: EstimatorBase, rng: np.random.Generator) -> None:
    if not dataclasses.is_dataclass(est):
        _fail(est, "must be a dataclass of settings")
    try:
        first = dataclasses.fields(est)[0].name if dataclasses.fields(est) else "name"
        setattr(est, first, None)
    except dataclasses.FrozenInstanceError:
        pass
    else:
        _fail(est, "must be frozen (settings are immutable)")
    if not (isinstance(est.name, str) and est.name):
        _fail(est, "needs a non-empty registry `name`")
    hash(est)
    if type(est)(**est.settings()) != est:
        _fail(est, "must round-trip through its settings() dict")


def check_contributions_shape(est: EstimatorBase, rng: np.random.Generator) -> None:
    batch = random_batch(rng)
    c = est.contributions(batch)
    if not (isinstance(c, np.ndarray) and c.dtype == np.float64 and c.shape == (batch.n,)):
        _fail(est, f"contributions must be float64 of shape ({batch.n},); got {getattr(c, 'dtype', type(c))} {getattr(c, 'shape', '')}")
    if not np.isfinite(c).all():
        _fail(est, "contributions must be finite on a valid batch")


def check_estimate_is_mean_of_contributions(est: EstimatorBase, rng: np.random.Generator) -> None:
    batch = random_batch(rng)
    e = est.estimate(batch)
    if not isinstance(e, Estimate) or e.estimator != est.name or e.n != batch.n:
        _fail(est, f"estimate() must return an Estimate named {est.name!r} with n={batch.n}; got {e!r}")
    c = est.contributions(batch)
    if not math.isclose(e.value, float(c.mean()), rel_tol=1e-12, abs_tol=1e-12):
        _fail(est, f"estimate {e.value} is not the mean of its contributions {c.mean()}")
    if not (e.ci_low <= e.value <= e.ci_high and e.std_err > 0):
        _fail(est, f"normal interval [{e.ci_low}, {e.ci_high}] must contain {e.value} with std_err > 0 (got {e.std_err})")
    wide = est.estimate(batch, level=0.99)
    if not (wide.ci_low < e.ci_low and wide.ci_high > e.ci_high):
        _fail(est, "a 99% interval must be wider than a 95% one")


def check_bootstrap(est: EstimatorBase, rng: np.random.Generator) -> None:
    batch = random_batch(rng)
    a = est.estimate(batch, ci="bootstrap", n_bootstrap=300, rng=np.random.default_rng(7))
    b = est.estimate(batch, ci="bootstrap", n_bootstrap=300, rng=np.random.default_rng(7))
    if (a.ci_low, a.ci_high) != (b.ci_low, b.ci_high):
        _fail(est, "bootstrap intervals must be reproducible from the same Generator seed")
    normal = est.estimate(batch)
    if not (a.ci_low < a.value < a.ci_high):
        _fail(est, f"bootstrap interval [{a.ci_low}, {a.ci_high}] must contain the estimate {a.value}")
    if not (0.7 < a.std_err / normal.std_err < 1.3):
        _fail(est, f"bootstrap std_err {a.std_err} should be close to the normal one {normal.std_err}")


def check_row_order_invariance(est: EstimatorBase, rng: np.random.Generator) -> None:
    batch = random_batch(rng)
    perm = rng.permutation(batch.n)
    a, b = est.estimate(batch).value, est.estimate(batch.take(perm)).value
    if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
        _fail(est, f"shuffling the rows changed the estimate: {a} vs {b}")


def check_scale_equivariance(est: EstimatorBase, rng: np.random.Generator) -> None:
    batch = random_batch(rng)
    s = 3.5
    scaled = LoggedBatch(batch.actions, batch.rewards * s, batch.propensities, batch.target_probs, batch.reward_hat * s)
    a, b = est.estimate(batch).value, est.estimate(scaled).value
    if not math.isclose(a * s, b, rel_tol=1e-9, abs_tol=1e-12):
        _fail(est, f"scaling rewards and predictions by {s} must scale the estimate: {a * s} vs {b}")


def check_on_policy_exact(est: EstimatorBase, rng: np.random.Generator) -> None:
    """Deterministic logging = deterministic target, a model exact on the logged arm: mean reward."""
    n, k = 200, 3
    actions = rng.integers(0, k, n)
    target = np.eye(k)[actions]
    rewards = rng.normal(size=n)
    q = rng.normal(size=(n, k))
    q[np.arange(n), actions] = rewards
    v = est.estimate(LoggedBatch(actions, rewards, np.ones(n), target, q)).value
    if not math.isclose(v, float(rewards.mean()), rel_tol=1e-9, abs_tol=1e-12):
        _fail(est, f"on-policy with an exact model the estimate must be the mean reward {rewards.mean()}; got {v}")


def check_no_mutation(est: EstimatorBase, rng: np.random.Generator) -> None:
    batch = random_batch(rng)
    before = [x.copy() for x in (batch.actions, batch.rewards, batch.propensities, batch.target_probs, batch.reward_hat)]
    est.estimate(batch)
    after = (batch.actions, batch.rewards, batch.propensities, batch.target_probs, batch.reward_hat)
    if not all(np.array_equal(x, y) for x, y in zip(before, after)):
        _fail(est, "estimate() changed its input batch")


def check_reward_model_requirement(est: EstimatorBase, rng: np.random.Generator) -> None:
    batch = random_batch(rng, with_model=False)
    if est.needs_reward_model:
        try:
            est.estimate(batch)
        except ValueError as exc:
            if "reward_hat" not in str(exc):
                _fail(est, f"the error for a missing reward model must name `reward_hat`; got {exc}")
        else:
            _fail(est, "declares needs_reward_model but estimated without `reward_hat`")
    else:
        est.estimate(batch)


def check_support_warning(est: EstimatorBase, rng: np.random.Generator) -> None:
    n, k = 100, 3
    actions = rng.integers(0, 2, n)  # arm 2 never logged
    target = np.tile([0.2, 0.3, 0.5], (n, 1))
    batch = LoggedBatch(actions, rng.normal(size=n), np.full(n, 0.5), target, rng.normal(size=(n, k)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.estimate(batch)
    if not any(issubclass(w.category, SupportWarning) for w in caught):
        _fail(est, "must warn (SupportWarning) when the target uses an arm the log never chose")


CHECKS = (
    check_settings_dataclass,
    check_contributions_shape,
    check_estimate_is_mean_of_contributions,
    check_bootstrap,
    check_row_order_invariance,
    check_scale_equivariance,
    check_on_policy_exact,
    check_no_mutation,
    check_reward_model_requirement,
    check_support_warning,
)
