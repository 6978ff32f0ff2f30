"""Off-policy evaluation against the truth: every estimator's estimate and interval next to the true value.

    python examples/ope_vs_truth.py                    # the shipped SmolLM2-135M log, a few minutes on 2 CPU cores
    python examples/ope_vs_truth.py --log LOG --logging uniform softmax:0.05 epsilon-greedy --n-repeats 50

A full-information log knows every arm's outcome on every prompt, so the value of any policy on
its held-out prompts is known exactly. This example

1. trains the learners and the baselines (uniform, every single arm, the hindsight oracle) on
   the train split (``bandit.suite.train_policies``);
2. on the held-out prompts (the ``validation`` and ``test`` splits, whichever the log has),
   simulates each logging policy ``n_repeats`` times: repeat ``r`` of the ``i``-th logging
   policy draws one arm per prompt with ``numpy.random.default_rng([seed, i, r])`` and keeps
   only that arm's reward and its exact propensity (``logging_data.simulate``);
3. estimates every policy's value from each simulated log with every estimator
   (``bandit.report.evaluate_policies``: one cross-fitted reward model per log, normal
   intervals at 95%), and compares with the true value ``mean_i sum_a pi(a | x_i) r[i, a]``.

Reported per (logging, policy, estimator): the true value, the first repeat's estimate and
interval, and over the repeats the mean estimate, bias, RMSE, mean interval width and coverage
(the share of intervals holding the truth). Per (logging, estimator): how often picking the
deployable policy with the best estimate (``bandit.suite.select_policy``) picks the truly best
one, and the mean regret of that pick.

Logging policies: ``uniform``; ``softmax[:T]``, a softmax of the held-out rewards at
temperature ``T`` (default: the standard deviation of those rewards, so an arm one standard
deviation better is e times as likely): a logger that prefers good arms but explores every one;
``epsilon-greedy[:EPS]``, the best single arm of the train split with probability ``1 - EPS``
(default 0.3), the rest spread evenly.

Writes ``ope_vs_truth.json`` (every number), ``ope_vs_truth.png`` (per policy: estimates with
intervals per estimator and logging policy, the truth as a line) and ``ope_coverage.png``
(coverage per policy and estimator) into ``--out``; prints the tables; progress on stderr. The JSON's
``by_estimator`` sums each estimator up over the policies (min and mean coverage, mean RMSE,
mean absolute bias, mean interval width).

Research only, and longer than an example should be (named in BENCHMARKS.md, "Benchmark commands"):
a study: every estimator against the truth under several simulated logging policies, with its
tables and figures; the estimators, the simulation and the selection it calls are the package's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from logging_data.console import progress_bars

HERE = Path(__file__).resolve().parent
SHIPPED_LOG = HERE / "data" / "smollm2-log"
ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr", "switch-dr", "dros")
LOGGING = ("uniform", "softmax")
LEARNERS = ("regression", "classifier", "taskspec", "reinforce")
HOLDOUT = ("validation", "test")
EPSILON = 0.3


def _say(message: str) -> None:
    print(f"[ope_vs_truth] {message}", file=sys.stderr, flush=True)


# -- logging policies ------------------------------------------------------------------------------------
def make_logging(spec: str, heldout_rewards: np.ndarray, train_outcomes: pd.DataFrame, arm_names: Sequence[str]
                 ) -> tuple[Any, dict]:
    """(logging policy, its resolved settings as JSON) from ``uniform``, ``softmax[:T]`` or ``epsilon-greedy[:EPS]``.

    ``heldout_rewards`` float64 (n, n_arms) sets softmax's default temperature (their standard
    deviation); ``train_outcomes`` picks epsilon-greedy's arm (the best single arm on average).
    """
    from logging_data.simulate import EpsilonGreedyLogging, SoftmaxLogging, UniformLogging

    name, sep, arg = spec.partition(":")
    value = None
    if sep:
        try:
            value = float(arg)
        except ValueError:
            raise ValueError(f"logging policy {spec!r}: the setting after ':' must be a number; got {arg!r}") from None
    if name == "uniform":
        if sep:
            raise ValueError(f"logging policy {spec!r}: uniform takes no setting")
        return UniformLogging(), {"spec": spec, "name": "uniform"}
    if name == "softmax":
        if value is None:
            std = float(np.nanstd(heldout_rewards))
            value = std if std > 0 else 1.0
        return SoftmaxLogging(temperature=value), {"spec": spec, "name": "softmax", "temperature": value,
                                                   "scores": "the held-out prompts' own rewards"}
    if name == "epsilon-greedy":
        if train_outcomes.empty:
            raise ValueError(f"logging policy {spec!r} needs the train split to pick its arm; the log has no train rows")
        means = train_outcomes.groupby(train_outcomes["arm"].astype(str), observed=True)["reward"].mean()
        arm = str(means.idxmax())
        eps = EPSILON if value is None else value
        return (EpsilonGreedyLogging(arm=list(arm_names).index(arm), epsilon=eps),
                {"spec": spec, "name": "epsilon-greedy", "arm": arm, "epsilon": eps})
    raise ValueError(f"unknown logging policy {spec!r}; expected uniform, softmax[:T] or epsilon-greedy[:EPS]")


# -- the summaries ----------------------------------------------------------------------------------------
def summarise(rows: pd.DataFrame) -> list[dict]:
    """One record per (logging, policy, estimator) over the repeats of ``rows`` (one row per estimate)."""
    out = []
    for (logging, policy, estimator), part in rows.groupby(["logging", "policy", "estimator"], sort=False):
        part = part.sort_values("repeat")
        truth = float(part["true_value"].iloc[0])
        err = part["estimate"].to_numpy() - truth
        first = part.iloc[0]
        out.append({
            "logging": logging, "policy": policy, "estimator": estimator, "true_value": truth,
            "estimate": float(first["estimate"]), "ci_low": float(first["ci_low"]), "ci_high": float(first["ci_high"]),
            "mean_estimate": float(part["estimate"].mean()), "bias": float(err.mean()),
            "rmse": float(np.sqrt((err**2).mean())), "std": float(part["estimate"].std(ddof=0)),
            "mean_ci_width": float((part["ci_high"] - part["ci_low"]).mean()),
            "coverage": float(part["covers_truth"].astype(bool).mean()),
            "mean_ess": float(part["ess"].mean()), "n_repeats": int(len(part)),
        })
    return out


def by_estimator(summary: list[dict]) -> list[dict]:
    """Per (logging, estimator), over the policies: min and mean coverage, mean RMSE, mean |bias|, mean interval width."""
    frame = pd.DataFrame(summary)
    out = []
    for (logging, estimator), part in frame.groupby(["logging", "estimator"], sort=False):
        out.append({"logging": logging, "estimator": estimator, "min_coverage": float(part["coverage"].min()),
                    "mean_coverage": float(part["coverage"].mean()), "mean_rmse": float(part["rmse"].mean()),
                    "mean_abs_bias": float(part["bias"].abs().mean()), "mean_ci_width": float(part["mean_ci_width"].mean())})
    return out


def selection(picks: pd.DataFrame, truths: dict[str, float], deployable: Sequence[str]) -> list[dict]:
    """Per (logging, estimator): share of repeats whose pick is a truly best deployable policy, mean regret.

    A pick tied with the best true value (to 1e-12) counts as correct: its regret is 0.
    """
    top = max(truths[p] for p in deployable)
    best = [p for p in deployable if truths[p] >= top - 1e-12]
    out = []
    for (logging, estimator), part in picks.groupby(["logging", "estimator"], sort=False):
        regret = np.array([top - truths[p] for p in part["pick"]])
        out.append({"logging": logging, "estimator": estimator, "truly_best": best,
                    "share_correct": float((regret <= 1e-12).mean()), "mean_regret": float(regret.mean()),
                    "picks": {str(k): int(v) for k, v in part["pick"].value_counts().items()}})
    return out


# -- the figures -----------------------------------------------------------------------------------------
def plot_estimates(result: dict, path: Path) -> Path:
    """Per policy: first-repeat estimate with its interval per (estimator, logging), other repeats as dots, truth as a line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = pd.DataFrame(result["summary"])
    raw = pd.DataFrame(result["estimates"])
    policies, estimators, loggings = result["policies"], result["estimators"], [lg["spec"] for lg in result["logging"]]
    ncols = min(3, len(policies))
    nrows = -(-len(policies) // ncols)
    fig = Figure(figsize=(4.6 * ncols, 0.6 + 0.3 * len(estimators) * len(loggings) * nrows + 0.6 * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    step = 1.0 / (len(loggings) + 1)
    for ax, policy in zip(axes, policies):
        here = summary[summary["policy"] == policy]
        for li, logging in enumerate(loggings):
            for ei, estimator in enumerate(estimators):
                y = len(estimators) - 1 - ei + (li - (len(loggings) - 1) / 2) * step
                s = here[(here["logging"] == logging) & (here["estimator"] == estimator)].iloc[0]
                dots = raw[(raw["policy"] == policy) & (raw["logging"] == logging) & (raw["estimator"] == estimator)]
                ax.plot(dots["estimate"], np.full(len(dots), y), "|", color=f"C{li}", alpha=0.35, markersize=6)
                ax.errorbar([s["estimate"]], [y], xerr=[[s["estimate"] - s["ci_low"]], [s["ci_high"] - s["estimate"]]],
                            fmt="o", color=f"C{li}", markersize=4, capsize=2, label=logging if ei == 0 else None)
        truth = here["true_value"].iloc[0]
        ax.axvline(truth, color="black", linewidth=1)
        ax.plot([truth], [len(estimators) - 0.4], marker="D", color="black", linestyle="none")
        ax.set_yticks(range(len(estimators)), list(reversed(estimators)))
        ax.set_title(policy, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[len(policies):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, title="logging", title_fontsize=7)
    fig.suptitle(f"Estimates (first repeat, {result['level']:.0%} {result['ci']} interval; ticks: other repeats) "
                 f"vs the true value (black) on {result['n_heldout']} held-out prompts", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    return path


def plot_coverage(result: dict, path: Path) -> Path:
    """Heat map per logging policy: coverage of the intervals, policy x estimator."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    summary = pd.DataFrame(result["summary"])
    loggings = [lg["spec"] for lg in result["logging"]]
    fig = Figure(figsize=(0.9 + 0.75 * len(result["estimators"]) * len(loggings), 0.9 + 0.38 * len(result["policies"])))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(loggings), squeeze=False)[0]
    for k, (ax, logging) in enumerate(zip(axes, loggings)):
        grid = (summary[summary["logging"] == logging].pivot(index="policy", columns="estimator", values="coverage")
                .reindex(index=result["policies"], columns=result["estimators"]))
        image = ax.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        for (i, j), v in np.ndenumerate(grid.to_numpy()):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(grid.shape[0]), grid.index if k == 0 else [""] * grid.shape[0], fontsize=8)
        ax.set_title(f"logging: {logging}", fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=f"coverage of the {result['level']:.0%} interval")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


# -- the job --------------------------------------------------------------------------------------------------
def main(log: str | Path = SHIPPED_LOG, out: str | Path = "out/ope_vs_truth", estimators: Sequence[str] = ESTIMATORS,
         logging: Sequence[str] = LOGGING, learners: Sequence[str] = LEARNERS, budget: str = "default", seed: int = 0,
         n_repeats: int = 50, holdout: Sequence[str] = HOLDOUT, ci: str = "normal", level: float = 0.95,
         progress: bool = True) -> dict:
    """Train, simulate logging on the held-out prompts ``n_repeats`` times, estimate; returns (and writes) the numbers."""
    from bandit.pipeline import split_rows, splits_present
    from bandit.report import evaluate_policies
    from bandit.suite import HINDSIGHT, check_plan, select_policy, train_policies
    from estimators import parse_estimator
    from logging_data import open_log
    from logging_data.simulate import query_frame, reward_matrix, simulate_decisions

    if not isinstance(n_repeats, int) or isinstance(n_repeats, bool) or n_repeats < 1:
        raise ValueError(f"n_repeats must be an integer >= 1; got {n_repeats!r}")
    if not estimators or not logging:
        raise ValueError(f"need at least one estimator and one logging policy; got estimators={list(estimators)}, "
                         f"logging={list(logging)}")
    ests = [parse_estimator(e) for e in estimators]  # unknown names fail before any work
    check_plan(learners, budget)
    wrong = [s for s in holdout if s not in HOLDOUT]
    if wrong or not holdout:
        raise ValueError(f"holdout must name splits among {', '.join(HOLDOUT)} (never the train split); got {list(holdout)}")
    t0 = time.perf_counter()
    log = Path(log)
    source = open_log(log)
    arm_names = source.metadata.arm_names
    outcomes = source.read("outcomes")
    split = outcomes["split"].astype(object)
    used = [s for s in holdout if (split == s).any()]
    if not used:
        raise ValueError(f"{log}: no outcomes in the held-out split(s) {', '.join(holdout)} (splits present: {splits_present(outcomes)})")
    heldout = outcomes[split.isin(used).to_numpy()].reset_index(drop=True)
    train = split_rows(outcomes, "train")
    qids, rewards = reward_matrix(heldout, arm_names)
    loggers = [make_logging(spec, rewards, train, arm_names) for spec in logging]

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _say(f"{log}: training {', '.join(learners) or 'no learners'} and the baselines on the train split")
    trained = train_policies(log, out / "runs", learners=tuple(learners), budget=budget, seed=seed, progress=False)
    runs = trained.load()
    frame = query_frame(heldout, qids)
    targets = {name: run.probabilities(frame) for name, run in runs.items()}
    t_train = time.perf_counter() - t0
    _say(f"held-out: {len(qids)} prompts ({', '.join(used)}); {len(loggers)} logging policies x {n_repeats} repeats "
         f"x {len(targets)} policies x {len(ests)} estimators")

    records, picks, caught = [], [], {}
    truths: dict[str, float] = {}
    for li, (policy, settings) in enumerate(loggers):
        n_warn = 0
        for r in range(n_repeats):
            decisions = simulate_decisions(heldout, arm_names, policy, np.random.default_rng([seed, li, r]),
                                           policy_id=f"{settings['spec']}-r{r}")
            if decisions["query_id"].astype(str).tolist() != qids:  # the targets are aligned to this order
                raise RuntimeError("simulate_decisions returned the held-out prompts in another order than reward_matrix")
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                result = evaluate_policies(decisions, arm_names, targets, ests, outcomes=heldout, ci=ci, level=level,
                                           seed=seed + r)
            n_warn += len(record)
            for row in result.rows():
                if row["true_value"] is None:
                    raise RuntimeError(f"no true value for {row['policy']}: the held-out outcomes miss an arm it uses")
                records.append({"logging": settings["spec"], "repeat": r, **row})
                truths[row["policy"]] = row["true_value"]
            for est in estimators:
                picks.append({"logging": settings["spec"], "repeat": r, "estimator": est,
                              "pick": select_policy(result, parse_estimator(est).name)})
        caught[settings["spec"]] = n_warn
        if progress:
            _say(f"logging {settings['spec']}: {n_repeats} repeats done ({n_warn} estimator warnings, e.g. low ESS)")

    raw = pd.DataFrame.from_records(records)
    deployable = [p for p in targets if p not in HINDSIGHT]
    result = {
        "log": str(log), "arms": list(arm_names), "reward": source.metadata.reward.to_json(),
        "heldout_splits": used, "n_heldout": len(qids), "n_repeats": n_repeats, "seed": seed, "budget": budget,
        "ci": ci, "level": level, "estimators": [parse_estimator(e).name for e in estimators],
        "logging": [s for _, s in loggers], "learners": list(learners), "policies": list(targets),
        "true_values": truths, "summary": summarise(raw), "selection": selection(pd.DataFrame(picks), truths, deployable),
        "warnings_per_logging": caught,
        "estimates": raw[["logging", "repeat", "policy", "estimator", "estimate", "ci_low", "ci_high", "covers_truth"]]
        .to_dict(orient="records"),
    }
    result["by_estimator"] = by_estimator(result["summary"])
    result["figures"] = [str(plot_estimates(result, out / "ope_vs_truth.png")),
                         str(plot_coverage(result, out / "ope_coverage.png"))]
    result["seconds"] = {"train": t_train, "total": time.perf_counter() - t0}
    (out / "ope_vs_truth.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result


def print_tables(result: dict) -> None:
    s = pd.DataFrame(result["summary"])
    with pd.option_context("display.width", 180, "display.precision", 3, "display.max_rows", 500):
        for logging, part in s.groupby("logging", sort=False):
            print(f"\nlogging {logging}: coverage of {result['level']:.0%} intervals over {result['n_repeats']} repeats "
                  f"(policy x estimator); truth in the first column")
            table = part.pivot(index="policy", columns="estimator", values="coverage").reindex(
                index=result["policies"], columns=result["estimators"])
            table.insert(0, "truth", pd.Series(result["true_values"]))
            print(table.to_string())
            print("RMSE:")
            rmse = part.pivot(index="policy", columns="estimator", values="rmse").reindex(
                index=result["policies"], columns=result["estimators"])
            ess = part[part["estimator"] == result["estimators"][0]].set_index("policy")["mean_ess"]
            rmse.insert(0, f"ESS (of {result['n_heldout']})", ess)
            print(rmse.to_string())
        print("\nper estimator, over the policies:")
        print(pd.DataFrame(result["by_estimator"]).set_index(["logging", "estimator"]).to_string())
        sel = pd.DataFrame(result["selection"]).pivot(index="estimator", columns="logging", values="share_correct")
        print(f"\nshare of repeats where the best estimate picks the truly best deployable policy "
              f"({', '.join(result['selection'][0]['truly_best'])}):")
        print(sel.to_string())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", default=str(SHIPPED_LOG), help="a full-information log with train and held-out splits")
    parser.add_argument("--out", default="out/ope_vs_truth")
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), help="specs such as ips dr switch-dr:tau=5")
    parser.add_argument("--logging", nargs="+", default=list(LOGGING), help="uniform, softmax[:T], epsilon-greedy[:EPS]")
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS))
    parser.add_argument("--budget", default="default", help="bandit.suite.BUDGETS key: default or tiny")
    parser.add_argument("--n-repeats", type=int, default=50)
    parser.add_argument("--holdout", nargs="+", default=list(HOLDOUT), help="held-out splits (validation, test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON document")
    args = parser.parse_args()
    res = main(args.log, args.out, tuple(args.estimators), tuple(args.logging), tuple(args.learners), args.budget,
               args.seed, args.n_repeats, tuple(args.holdout),
               progress=progress_bars())
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_tables(res)
