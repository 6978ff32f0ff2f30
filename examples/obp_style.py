"""Outside bandit data, Open Bandit Pipeline style: generate it, import it, evaluate a policy table against the truth.

    python examples/obp_style.py --n 20000 --out out/obp_style

Writes ``logged.csv`` (OBP's column names: ``action``, ``reward``, ``pscore``, and context
``x0``, ``x1``; a logging policy that mixes uniform with the reverse of the target) and
``target.csv`` (the evaluation policy's action probabilities, OBP's ``action_dist``, one row per
decision), knowing the target policy's true value (its expected reward under the generating
model, from 400,000 fresh contexts). Then runs the README's two commands::

    bandit-log import logged.csv --out LOG --action action --reward reward --propensity pscore --context 'x*'
    bandit-log evaluate LOG --policy-table target.csv --estimator ips --estimator snips --estimator dr \
        --report REPORT --json

(the reward model of DR reads the imported context, ``x0`` and ``x1``, by default)

and prints each estimate and interval beside the true value.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

K = 3
W = np.array([[1.0, -0.5], [-0.8, 0.9], [0.2, 0.1]])  # expected reward: sigmoid(x @ W[a])
T = np.array([[2.0, -1.0], [-1.5, 1.5], [0.0, 0.0]])  # the target policy: softmax(x @ T.T)


def mu(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(x @ W.T)))


def target(x: np.ndarray) -> np.ndarray:
    s = x @ T.T
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def generate(n: int, seed: int, out: Path) -> float:
    """Write logged.csv and target.csv into ``out``; return the target policy's true value."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    logging = 0.5 / K + 0.5 * target(-x)
    a = (rng.random(n)[:, None] > np.cumsum(logging, axis=1)).sum(axis=1)
    r = rng.binomial(1, mu(x)[np.arange(n), a]).astype(float)
    pd.DataFrame({"action": a, "reward": r, "pscore": logging[np.arange(n), a], "x0": x[:, 0], "x1": x[:, 1]}).to_csv(
        out / "logged.csv", index=False)
    pi = target(x)
    pd.DataFrame({str(k): pi[:, k] for k in range(K)}).to_csv(out / "target.csv", index=False)
    big = np.random.default_rng(12345).normal(size=(400_000, 2))
    return float((target(big) * mu(big)).sum(axis=1).mean())


def main(n: int = 20_000, seed: int = 0, out: str | Path = "out/obp_style") -> dict:
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    truth = generate(n, seed, out)
    cli = [sys.executable, "-m", "bandit.cli.main"]
    subprocess.run(cli + ["import", str(out / "logged.csv"), "--out", str(out / "LOG"), "--action", "action", "--reward", "reward",
                          "--propensity", "pscore", "--context", "x*"], check=True)
    res = subprocess.run(cli + ["evaluate", str(out / "LOG"), "--policy-table", str(out / "target.csv"),
                                "--estimator", "ips", "--estimator", "snips", "--estimator", "dr", "--report", str(out / "report"),
                                "--json"], check=True, capture_output=True, text=True)
    rows = [r for r in json.loads(res.stdout)["rows"] if r["policy"] == "target"]
    print(f"true value of the target policy: {truth:.4f}   ({n} logged decisions)")
    for r in rows:
        covered = r["ci_low"] <= truth <= r["ci_high"]
        print(f"  {r['estimator']:6s} {r['estimate']:.4f}  [{r['ci_low']:.4f}, {r['ci_high']:.4f}]  covers the truth: {covered}")
    print(f"report: {out / 'report' / 'report.html'}")
    return {"truth": truth, "rows": rows}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/obp_style")
    a = ap.parse_args()
    main(a.n, a.seed, a.out)
