"""Benchmark: every registered estimator on a large logged batch, as rows per second.

Not a test: a command. It builds one synthetic batch (uniform logging over ``n_arms`` arms, a
random Dirichlet target, a random reward model), then times for each estimator (a) the point
estimate with its normal interval and (b) the estimate with a bootstrap interval of
``n_bootstrap`` resamples. Diagnostics (ESS, max weight, support) are part of every estimate.

    python examples/bench_estimators.py                 # 1M rows x 8 arms, prints JSON
    python examples/bench_estimators.py --n-rows 100000 --n-bootstrap 50
"""

from __future__ import annotations

import argparse
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


def _timed(fn):
    """(wall seconds, CPU seconds of this process, result): CPU time is the steadier number on a shared machine."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def main(n_rows: int = 1_000_000, n_arms: int = 8, seed: int = 0, n_bootstrap: int = 50) -> dict:
    """Time every estimator; returns the numbers (also what ``__main__`` prints as JSON)."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    batch = make_batch(n_rows, n_arms, rng)
    t_batch = time.perf_counter() - start  # includes generating the data and validating it
    results = {}
    for name in estimator_names():
        est = get_estimator(name)
        t_normal, cpu_normal, e = _timed(lambda: est.estimate(batch, warn=False))
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
        "estimators": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-rows", type=int, default=1_000_000)
    parser.add_argument("--n-arms", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-bootstrap", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(main(args.n_rows, args.n_arms, args.seed, args.n_bootstrap), indent=2))
