"""Benchmark: every registered estimator on a large logged batch, as rows per second.

Not a test: a command. It builds one synthetic batch (uniform logging over ``n_arms`` arms, a
random Dirichlet target, a random reward model), then times for each estimator (a) the point
estimate with its normal interval and (b) the estimate with a bootstrap interval of
``n_bootstrap`` resamples. Diagnostics (ESS, max weight, support) are part of every estimate.

    python examples/bench_estimators.py                 # 1M rows x 8 arms, prints JSON
    python examples/bench_estimators.py --n-rows 100000 --n-bootstrap 50

When Open Bandit Pipeline is importable (``import obp``; its wheel refuses Python 3.11, so put its
source on ``PYTHONPATH``, with seaborn), the same arrays also go through OBP's estimator of the same
definition (``estimate_policy_value``, its input checks included), side by side in the same run:
values (must agree to 1e-9) and seconds, and the speed-up of ours (point estimate, normal interval
and diagnostics) over OBP's point estimate. Ours is timed alone per estimator (the batch's shared
work, e.g. the weights and the DM term, dropped before each call and paid in full) and as all seven
in turn on one batch (that work done once, as a report does). Without OBP that part is skipped
and says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

import numpy as np

from estimators import LoggedBatch, estimator_names, get_estimator


def make_batch(n_rows: int, n_arms: int, rng: np.random.Generator) -> LoggedBatch:
    """A valid batch: uniform logging, Dirichlet target probabilities, a noisy reward model."""
    actions = rng.integers(0, n_arms, n_rows)
    propensities = np.full(n_rows, 1.0 / n_arms)
    target = rng.dirichlet(np.ones(n_arms), size=n_rows)
    expected = rng.random((n_rows, n_arms))
    rewards = expected[np.arange(n_rows), actions] + 0.1 * rng.standard_normal(n_rows)
    reward_hat = expected + 0.05 * rng.standard_normal((n_rows, n_arms))
    return LoggedBatch(actions, rewards, propensities, target, reward_hat)


def _fresh(batch: LoggedBatch) -> LoggedBatch:
    """``batch`` with its cached per-batch work dropped (the same arrays, already validated)."""
    names = {f.name for f in dataclasses.fields(batch)}
    for key in [k for k in vars(batch) if k not in names]:
        del batch.__dict__[key]
    return batch


def all_seven(batch: LoggedBatch, repeats: int) -> float:
    """Best-of-``repeats`` seconds of every estimator in turn on one batch (its shared work done once)."""
    def run():
        _fresh(batch)
        for name in estimator_names():
            get_estimator(name).estimate(batch, warn=False)
    return min(_timed(run)[0] for _ in range(repeats))


def _timed(fn):
    """(wall seconds, CPU seconds of this process, result): CPU time is the steadier number on a shared machine."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


# OBP's estimator of the same definition as each of ours (OBP's defaults equal ours: lambda_ = inf,
# except DoublyRobustWithShrinkage, whose lambda_ is set to our dros default of 100).
OBP_TWINS = {"dm": ("DirectMethod", {}), "ips": ("InverseProbabilityWeighting", {}),
             "snips": ("SelfNormalizedInverseProbabilityWeighting", {}), "dr": ("DoublyRobust", {}),
             "sndr": ("SelfNormalizedDoublyRobust", {}), "switch-dr": ("SwitchDoublyRobust", {}),
             "dros": ("DoublyRobustWithShrinkage", {"lambda_": 100.0})}


def obp_side_by_side(batch: LoggedBatch, ours: dict, repeats: int = 3) -> dict:
    """OBP's twin of every estimator on ``batch``'s arrays: value, best-of-``repeats`` seconds, speed-up of ours."""
    try:
        import obp
        from obp import ope
    except ImportError as exc:
        return {"skipped": f"Open Bandit Pipeline is not importable ({exc}); put its source on PYTHONPATH to compare"}
    arrays = dict(reward=np.asarray(batch.rewards), action=np.asarray(batch.actions), pscore=np.asarray(batch.propensities),
                  action_dist=np.asarray(batch.target_probs)[:, :, None],
                  estimated_rewards_by_reg_model=np.asarray(batch.reward_hat)[:, :, None], position=None)
    out = {"obp_version": getattr(obp, "__version__", None), "estimators": {}}
    obp_total = 0.0
    for name, (cls_name, settings) in OBP_TWINS.items():
        est = getattr(ope, cls_name)(**settings)
        seconds, value = min((_timed(lambda: est.estimate_policy_value(**arrays))[::2] for _ in range(repeats)),
                             key=lambda t: t[0])
        value = float(value)
        obp_total += seconds
        mine = ours[name]
        out["estimators"][name] = {
            "obp_class": cls_name, "obp_value": value, "value": mine["value"],
            "equal": bool(abs(value - mine["value"]) <= 1e-9 * max(1.0, abs(value))),
            "obp_seconds": seconds, "seconds": mine["normal_seconds"], "speedup": seconds / mine["normal_seconds"],
        }
    out["obp_all_seven_seconds"] = obp_total
    return out


def main(n_rows: int = 1_000_000, n_arms: int = 8, seed: int = 0, n_bootstrap: int = 50, repeats: int = 3,
         compare_obp: bool = True) -> dict:
    """Time every estimator; returns the numbers (also what ``__main__`` prints as JSON)."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    batch = make_batch(n_rows, n_arms, rng)
    t_batch = time.perf_counter() - start  # includes generating the data and validating it
    results = {}
    for name in estimator_names():
        est = get_estimator(name)
        # each estimator alone: the batch's shared per-batch work (weights, DM term...) is dropped before every
        # timed call, so it is paid in full; best of `repeats`: the steadiest number on a shared machine
        (t_normal, cpu_normal, e) = min((_timed(lambda: est.estimate(_fresh(batch), warn=False)) for _ in range(repeats)),
                                        key=lambda t: t[0])
        t_boot, cpu_boot, b = _timed(lambda: est.estimate(batch, ci="bootstrap", n_bootstrap=n_bootstrap, rng=np.random.default_rng(seed), warn=False))
        results[name] = {
            "value": e.value,
            "normal_ci": [e.ci_low, e.ci_high],
            "bootstrap_ci": [b.ci_low, b.ci_high],
            "normal_seconds": t_normal,
            "normal_rows_per_s": n_rows / t_normal,
            "normal_cpu_seconds": cpu_normal,
            "bootstrap_seconds": t_boot,
            "bootstrap_rows_per_s": n_rows / t_boot,
            "bootstrap_cpu_seconds": cpu_boot,
        }
    return {
        "n_rows": n_rows,
        "n_arms": n_arms,
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "batch_build_seconds": t_batch,
        "total_normal_seconds": sum(r["normal_seconds"] for r in results.values()),
        "total_bootstrap_seconds": sum(r["bootstrap_seconds"] for r in results.values()),
        "total_cpu_seconds": sum(r["normal_cpu_seconds"] + r["bootstrap_cpu_seconds"] for r in results.values()),
        "repeats": repeats,
        "estimators": results,
        "all_seven_one_batch_seconds": all_seven(batch, repeats),
        "obp": obp_side_by_side(batch, results, repeats) if compare_obp else {"skipped": "not asked"},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-rows", type=int, default=1_000_000)
    parser.add_argument("--n-arms", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-bootstrap", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per estimator; the best is kept")
    args = parser.parse_args()
    print(json.dumps(main(args.n_rows, args.n_arms, args.seed, args.n_bootstrap, args.repeats), indent=2))
