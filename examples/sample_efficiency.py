"""Sample efficiency: each learned policy's speed-up on the test split against the number of training prompts.

    python examples/sample_efficiency.py                  # the shipped SmolLM2-135M log, a few minutes on 2 CPU cores
    python examples/sample_efficiency.py --log LOG --sizes 8 32 128 --repeats 5 --out out/se

For each training size n (a log scale: 4, 8, 16, ... and finally every train prompt) and each
of ``repeats`` seeded draws, n prompts of the train split are drawn without replacement and
written, with the source log's metadata, as a log of their own; every learner is trained on it
(``bandit.suite.train_policies``, learner seed ``seed + repeat``) and valued on the whole test
split from the log's measurements. A policy's value on a measure is the expected per-prompt
mean under its probabilities, ``mean_i sum_a pi(a | x_i) m[i, a]``, for the log's ``reward``
and, where the log has them (and they differ from the reward), its ``speedup_count`` and
``speedup_wall`` columns. Every single arm and the oracle (the best arm per test prompt in
hindsight, by reward) are drawn as horizontal lines. At the full size every repeat trains on
the same prompts, so the spread there is the learner's own seed.

The research (Huang et al. 2024) reports that fewer than 10,000 training prompts matched a
policy trained on ~400,000; the JSON's ``summary`` says, per learner, at which size the mean
first comes within a tenth of the oracle-over-best-arm gap of the full-size mean, and at which
it first beats the best single arm.

Writes ``sample_efficiency.json`` (every number) and ``sample_efficiency.png`` (log-x curves,
one panel per measure) into ``--out``; prints a table on stdout; progress on stderr.

Research only, and longer than an example should be (named in BENCHMARKS.md, "Benchmark commands"):
a study: learning curves over subsampled logs with figures; the training, the curve's sizes
(``bandit.pipeline.log2_sizes``) and the values it calls are the package's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from logging_data.console import progress_bars

from bandit.pipeline import log2_sizes, split_rows, splits_present

HERE = Path(__file__).resolve().parent
SHIPPED_LOG = HERE / "data" / "smollm2-log"
LEARNERS = ("regression", "classifier", "reinforce")
SPEEDUP_COLUMNS = ("speedup_count", "speedup_wall")
#: the mean is "as good as the full size" within this share of the oracle-over-best-arm gap
MATCH_TOLERANCE = 0.1


def _say(message: str) -> None:
    print(f"[sample_efficiency] {message}", file=sys.stderr, flush=True)


# -- the numbers -------------------------------------------------------------------------------------
def measure_matrices(outcomes: pd.DataFrame, arm_names: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """(query_ids, {measure: float64 (n_prompts, n_arms)}) of one split, NaN where unmeasured.

    Measures: ``reward``, then each of ``SPEEDUP_COLUMNS`` the table has, fully filled, and not
    identical to the reward (on a ``speedup_count`` log the reward *is* that column).
    """
    from logging_data.simulate import reward_matrix

    qids, reward = reward_matrix(outcomes, arm_names)
    out = {"reward": reward}
    for col in SPEEDUP_COLUMNS:
        if col not in outcomes.columns or outcomes[col].isna().any():
            continue
        col_qids, matrix = reward_matrix(outcomes.assign(reward=outcomes[col].astype(np.float64)), arm_names)
        if col_qids != qids:  # pragma: no cover - same rows, same first-seen order
            raise RuntimeError("reward_matrix gave a different query order for the same rows")
        if np.array_equal(matrix, reward, equal_nan=True):
            continue
        out[col] = matrix
    return qids, out


def policy_values(probs: np.ndarray, matrices: dict[str, np.ndarray]) -> dict[str, float | None]:
    """{measure: expected per-prompt mean under ``probs`` float64 (n, n_arms)}; None where it puts mass on a gap."""
    from logging_data.simulate import true_policy_value

    values: dict[str, float | None] = {}
    for name, matrix in matrices.items():
        try:
            values[name] = true_policy_value(matrix, probs)
        except ValueError:
            values[name] = None
    return values


def baseline_values(matrices: dict[str, np.ndarray], arm_names: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Values of ``uniform``, every ``fixed:ARM`` and the ``oracle`` (best arm by reward per prompt)."""
    reward = matrices["reward"]
    n, k = reward.shape
    out = {}
    for j, arm in enumerate(arm_names):
        probs = np.zeros((n, k))
        probs[:, j] = 1.0
        out[f"fixed:{arm}"] = policy_values(probs, matrices)
    available = ~np.isnan(reward)
    out["uniform"] = policy_values(available / available.sum(axis=1, keepdims=True), matrices)
    oracle = np.zeros((n, k))
    oracle[np.arange(n), np.nanargmax(reward, axis=1)] = 1.0
    out["oracle"] = policy_values(oracle, matrices)
    return out


def write_subsample(log: Any, outcomes: pd.DataFrame, query_ids: Sequence[str], path: Path) -> Path:
    """A new log at ``path`` (same metadata) holding the outcomes rows of ``query_ids`` only."""
    from logging_data import create_log

    keep = outcomes["query_id"].astype(str).isin(set(query_ids)).to_numpy()
    sub = create_log(path, log.metadata)
    sub.append("outcomes", outcomes[keep].reset_index(drop=True))
    return path


def _stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def summarise(curves: dict[str, dict[str, list[dict]]], baselines: dict[str, dict[str, float | None]],
              arm_names: Sequence[str]) -> dict[str, Any]:
    """Per learner, on the reward: gap closed at each size, and where it matches the full size / beats the best arm."""
    arm_values = {a: baselines[f"fixed:{a}"]["reward"] for a in arm_names}
    best_arm = max((a for a in arm_names if arm_values[a] is not None), key=lambda a: arm_values[a])
    best, oracle = arm_values[best_arm], baselines["oracle"]["reward"]
    gap = oracle - best
    out: dict[str, Any] = {"best_arm": best_arm, "best_arm_reward": best, "oracle_reward": oracle,
                           "tolerance": MATCH_TOLERANCE * gap, "learners": {}}
    for learner, by_measure in curves.items():
        points = by_measure["reward"]
        if not points:  # a policy that put mass on unmeasured arms at every size has no value
            continue
        full = points[-1]["mean"]
        matches = next((p["size"] for p in points if p["mean"] >= full - MATCH_TOLERANCE * gap), None)
        beats = next((p["size"] for p in points if p["mean"] > best), None)
        out["learners"][learner] = {
            "full_size": points[-1]["size"], "full_size_reward": full,
            "of_oracle_at_full_size": full / oracle if oracle else None,
            "gap_closed": {str(p["size"]): (p["mean"] - best) / gap if gap > 0 else None for p in points},
            "matches_full_size_at": matches, "beats_best_arm_at": beats,
        }
    return out


# -- the figure ----------------------------------------------------------------------------------------
def plot(result: dict, path: Path) -> Path:
    """Log-x curves (mean and min-max band per learner), single arms dashed, the oracle solid black."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    measures = result["measures"]
    fig = Figure(figsize=(6.0 * len(measures), 4.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    sizes = result["sizes"]
    for ax, measure in zip(axes, measures):
        for i, (learner, by_measure) in enumerate(result["curves"].items()):
            pts = by_measure[measure]
            x = [p["size"] for p in pts]
            ax.plot(x, [p["mean"] for p in pts], marker="o", color=f"C{i}", label=learner)
            ax.fill_between(x, [p["min"] for p in pts], [p["max"] for p in pts], color=f"C{i}", alpha=0.15)
        for j, arm in enumerate(result["arms"]):
            v = result["baselines"][f"fixed:{arm}"][measure]
            if v is not None:
                ax.axhline(v, color="grey", linestyle=(0, (2 + 2 * j, 2)), linewidth=1, label=f"always {arm}")
                ax.annotate(arm, (1.0, v), xycoords=("axes fraction", "data"), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=7, color="grey")
        oracle = result["baselines"]["oracle"][measure]
        if oracle is not None:
            ax.axhline(oracle, color="black", linewidth=1.5, label="oracle (hindsight)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("training prompts (log scale)")
        label = measure if measure != "reward" else f"reward ({result['reward']['kind']})"
        ax.set_ylabel(f"{label}, test-split mean")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8, frameon=False)
    fig.suptitle(f"Sample efficiency: {result['n_test_prompts']} test prompts; band = min-max over {result['repeats']} draws")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    return path


# -- the job --------------------------------------------------------------------------------------------
def main(log: str | Path = SHIPPED_LOG, out: str | Path = "out/sample_efficiency", sizes: Sequence[int] | None = None,
         learners: Sequence[str] = LEARNERS, repeats: int = 3, seed: int = 0, budget: str = "default",
         progress: bool = True) -> dict:
    """Train every learner at every size ``repeats`` times; returns (and writes) the numbers."""
    from bandit.runs import load_run
    from bandit.suite import check_plan, train_policies
    from logging_data import open_log
    from logging_data.simulate import query_frame

    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1; got {repeats!r}")
    if not learners:
        raise ValueError("learners is empty: name at least one (e.g. regression)")
    check_plan(learners, budget)
    t0 = time.perf_counter()
    log = Path(log)
    source = open_log(log)
    arm_names = source.metadata.arm_names
    outcomes = source.read("outcomes")
    train, test = split_rows(outcomes, "train"), split_rows(outcomes, "test")
    for name, part in (("train", train), ("test", test)):
        if part.empty:
            raise ValueError(f"{log}: no outcomes in the {name!r} split (splits present: {splits_present(outcomes)})")
    train_ids = sorted(train["query_id"].astype(str).unique())
    n_train = len(train_ids)
    sizes = log2_sizes(n_train) if sizes is None else sorted({int(s) for s in sizes})
    bad = [s for s in sizes if not 1 <= s <= n_train]
    if bad:
        raise ValueError(f"sizes must be between 1 and the {n_train} train prompts of {log}; got {', '.join(map(str, bad))}")

    qids, matrices = measure_matrices(test, arm_names)
    test_frame = query_frame(test, qids)
    baselines = baseline_values(matrices, arm_names)
    _say(f"{log}: {n_train} train prompts, {len(qids)} test prompts, arms {', '.join(arm_names)}; "
         f"sizes {sizes} x {repeats} draws x {len(learners)} learners; measures {', '.join(matrices)}")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".work"
    shutil.rmtree(work, ignore_errors=True)
    records = []
    try:
        for n in sizes:
            for r in range(repeats):
                start = time.perf_counter()
                chosen = sorted(np.random.default_rng([seed, n, r]).choice(train_ids, size=n, replace=False).tolist())
                here = work / f"n{n}-r{r}"
                sub = write_subsample(source, train, chosen, here / "log")
                trained = train_policies(sub, here / "runs", learners=tuple(learners), budget=budget,
                                         seed=seed + r, baselines=False, progress=False)
                for learner, path in trained.runs.items():
                    run = load_run(path)
                    records.append({"learner": learner, "size": n, "repeat": r, "seed": seed + r,
                                    "n_train_prompts": run.metrics["n_train_prompts"],
                                    "train_seconds": run.metrics["train_seconds"],
                                    "values": policy_values(run.probabilities(test_frame), matrices)})
                shutil.rmtree(here)
                if progress:
                    got = ", ".join(f"{x['learner']} {x['values']['reward']:.3f}" for x in records[-len(learners):])
                    _say(f"n={n} draw {r + 1}/{repeats}: {got} ({time.perf_counter() - start:.1f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    curves: dict[str, dict[str, list[dict]]] = {}
    for learner in learners:
        curves[learner] = {}
        for measure in matrices:
            points = []
            for n in sizes:
                vals = [x["values"][measure] for x in records if x["learner"] == learner and x["size"] == n]
                if all(v is not None for v in vals):
                    points.append({"size": n, **_stats(vals)})
            curves[learner][measure] = points
    result = {
        "log": str(log), "arms": list(arm_names), "reward": source.metadata.reward.to_json(),
        "measures": list(matrices), "n_train_prompts": n_train, "n_test_prompts": len(qids),
        "sizes": sizes, "repeats": repeats, "seed": seed, "budget": budget, "learners": list(learners),
        "value": "expected per-prompt mean under the policy's probabilities, on the test split",
        "baselines": baselines, "curves": curves, "runs": records,
        "summary": summarise(curves, baselines, arm_names),
    }
    result["figures"] = [str(plot(result, out / "sample_efficiency.png"))]
    result["seconds"] = time.perf_counter() - t0
    (out / "sample_efficiency.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result


def print_table(result: dict) -> None:
    with pd.option_context("display.width", 160, "display.precision", 4):
        for measure in result["measures"]:
            rows = {f"{learner} (mean)": {p["size"]: p["mean"] for p in c[measure]} for learner, c in result["curves"].items()}
            table = pd.DataFrame(rows).T
            for name in [f"fixed:{a}" for a in result["arms"]] + ["oracle"]:
                table.loc[name] = result["baselines"][name][measure]
            label = f"reward ({result['reward']['kind']})" if measure == "reward" else measure
            print(f"Test-split {label} by number of training prompts, mean of {result['repeats']} draws:")
            print(table.to_string() + "\n")
    s = result["summary"]
    for learner, v in s["learners"].items():
        print(f"{learner}: full size {v['full_size']} -> {v['full_size_reward']:.4f} ({v['of_oracle_at_full_size']:.1%} of oracle); "
              f"within {s['tolerance']:.4f} of it from n={v['matches_full_size_at']}; beats {s['best_arm']} from n={v['beats_best_arm_at']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", default=str(SHIPPED_LOG), help="a full-information log with train and test splits")
    parser.add_argument("--out", default="out/sample_efficiency")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="training sizes (default 4, 8, ... all)")
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", default="default", help="bandit.suite.BUDGETS key: default or tiny")
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON document")
    args = parser.parse_args()
    res = main(args.log, args.out, args.sizes, tuple(args.learners), args.repeats, args.seed, args.budget, progress=progress_bars())
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
