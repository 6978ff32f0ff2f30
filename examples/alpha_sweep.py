"""The alpha sweep: as the cost weight grows, the policy moves to cheaper arms.

    python examples/alpha_sweep.py                      # builds the default log live (minutes on 2 CPU cores)
    python examples/alpha_sweep.py --log LOG            # reuse a log (alignment-only or full)

The research scores an arm on a prompt by how well its own greedy output agrees with the
target's, minus a weight alpha times its cost: ``reward = align_accept - alpha * arm_cost``
(the ``none`` arm scores 0). A larger alpha should move the learned policy towards cheaper arms.

Default data: an *alignment-only* log (``bandit-log build --alignment-only``: independent
greedy runs, no assisted decoding) over the packaged SmolLM2-135M-Instruct target with arms of
different cost (``examples/models/smollm2-alignment.toml``): ``plain`` (no draft, cost 0),
prompt lookup (cost 0) and early-exit self-drafts after 4, 10 and 20 of the target's 30 layers
(their cost is the truncated target's step, calibrated on this machine, so they differ in cost
and in alignment). Prompts come from ``bandit-log prompts`` (``logging_data.prompts``), a small
number per domain, split 60% train / 40% test (the sweep has no use for a validation split).

For each alpha:

1. a copy of the log whose reward is recomputed from its columns, ``align_accept - alpha *
   arm_cost`` (``RewardDefinition(kind="alignment", metric="align_accept", alpha=alpha)``);
2. the policy (``--policy``, reward regression by default) trained on its train split
   (``bandit.runs.train_run``);
3. on the test split: the share of prompts the policy sends to each arm (its action
   probabilities averaged over prompts), the mean ``arm_cost`` of the chosen arms, the mean
   ``align_accept`` they keep, and the policy's mean reward next to the oracle's and the best
   single arm's.

Writes ``OUT/alpha_sweep.json`` (every number), ``OUT/arm_share.png`` (stacked shares against
alpha) and ``OUT/chosen_cost.png`` (mean chosen cost and alignment against alpha); the base log
(when built), the per-alpha logs and runs stay under ``OUT``. Progress goes to stderr.

Research only, and longer than an example should be (named in BENCHMARKS.md, "Benchmark commands"):
a study of the paper's alpha claim (an alignment log re-rewarded at every alpha, policies
trained at each, figures); the log building, training and rewards it calls are the package's.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from logging_data.console import progress_bars

HERE = Path(__file__).resolve().parent
DEFAULT_MODELS = HERE / "models" / "smollm2-alignment.toml"
DEFAULT_ALPHAS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
DEFAULT_PER_DOMAIN = 40
#: train, validation, test fractions of the prompts this sweep makes (it trains on train and reports on test only)
PROMPT_SPLIT = (0.6, 0.0, 0.4)
METRIC = "align_accept"


def _say(message: str) -> None:
    print(f"[alpha_sweep] {message}", file=sys.stderr, flush=True)


def _label(alpha: float) -> str:
    return f"alpha={alpha:g}"


def check_alphas(alphas: Sequence[float]) -> tuple[float, ...]:
    """The alphas as floats, ascending; ValueError for none, a repeat, or one that is not finite and >= 0."""
    values = list(alphas)
    if not values:
        raise ValueError("alphas must hold at least one value; got none")
    bad = [a for a in values if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or a < 0]
    if bad:
        raise ValueError(f"every alpha must be a finite number >= 0; got {bad[0]!r}")
    out = sorted(float(a) for a in values)
    dupes = sorted({a for a in out if out.count(a) > 1})
    if dupes:
        raise ValueError(f"alphas must not repeat; {dupes[0]:g} appears more than once")
    return tuple(out)


# -- the log ------------------------------------------------------------------------------------
def build_alignment_log(out: Path, models: str | Path, prompts: str | Path | None, per_domain: int, seed: int, *,
                        max_new_tokens: int | None = None, batch_size: int = 4, threads: int | None = None,
                        progress: bool = True) -> Path:
    """``bandit-log prompts`` (unless ``prompts`` is given), then an alignment-only build at ``out/log`` (resumable)."""
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.models import load_models_config

    if prompts is None:
        from logging_data.prompts import PromptSetConfig, build_prompt_set, write_prompt_set

        prompts = out / "prompts.parquet"
        if not prompts.exists():
            _say(f"making {per_domain} prompts per domain (seed {seed}) -> {prompts}")
            write_prompt_set(build_prompt_set(PromptSetConfig(per_domain=per_domain, seed=seed, split=PROMPT_SPLIT)), prompts)
    log = out / "log"
    _say(f"alignment-only build {log} from {prompts} with {models} (resumable: run again to continue)")
    cfg = BuildConfig(reward=reward_definition(METRIC, 0.0), max_new_tokens=max_new_tokens, batch_size=batch_size,
                      measure=False)
    build_log(prompts, load_models_config(models), log, cfg, threads=threads, progress=progress,
              command=f"examples/alpha_sweep.py (alignment-only, per_domain={per_domain}, seed={seed}, "
                      f"max_new_tokens={max_new_tokens}, batch_size={batch_size}, threads={threads})")
    return log


def base_outcomes(log: Any) -> pd.DataFrame:
    """The log's outcomes, checked: ``align_accept`` and ``arm_cost`` known wherever a reward needs them, a train and a test split."""
    frame = log.read("outcomes")
    kinds = {a.name: a.kind for a in log.metadata.arms}
    needs = frame["arm"].map(kinds) != "none"
    for col in (METRIC, "arm_cost"):
        missing = frame[needs & frame[col].isna()]
        if len(missing):
            first = missing.iloc[0]
            raise ValueError(f"{log.root}: the alpha sweep needs {col} for every arm but `none`; {len(missing)} row(s) have "
                             f"none (first: query_id={first['query_id']}, arm={first['arm']}); build the log with "
                             f"--reward {METRIC} (prompt lookup and model arms both get it)")
    splits = set(frame["split"].dropna().astype(str))
    for split in ("train", "test"):
        if split not in splits:
            raise ValueError(f"{log.root}: the alpha sweep trains on the train split and reports on the test split; "
                             f"the log has no {split} rows (splits found: {', '.join(sorted(splits)) or 'none'})")
    return frame


def reward_at(frame: pd.DataFrame, kinds: dict[str, str], alpha: float) -> np.ndarray:
    """``align_accept - alpha * arm_cost`` per row (0 for ``none`` arms): float64 (n_rows,)."""
    value = frame[METRIC].astype(float).to_numpy() - alpha * frame["arm_cost"].astype(float).to_numpy()
    from decoding.arms import is_plain

    none = np.array([is_plain(str(kinds.get(a))) for a in frame["arm"]], dtype=bool)
    return np.where(none, 0.0, value)


def alpha_log(base: Any, frame: pd.DataFrame, alpha: float, path: Path) -> Path:
    """A copy of the base log at ``path`` with the reward recomputed for ``alpha`` (replaces an older copy)."""
    from logging_data import LogMetadata, RewardDefinition, create_log

    kinds = {a.name: a.kind for a in base.metadata.arms}
    reward = RewardDefinition(kind="alignment", metric=METRIC, alpha=float(alpha),
                              description=f"{METRIC} - alpha * arm_cost (none arm = 0), recomputed from {base.root}")
    meta = LogMetadata(arms=base.metadata.arms, reward=reward,
                       extra={**base.metadata.extra, "alpha_sweep": {"source_log": str(base.root), "alpha": float(alpha)}})
    if path.exists():
        shutil.rmtree(path)
    log = create_log(path, meta)
    log.append("outcomes", frame.assign(reward=reward_at(frame, kinds, alpha)))
    return path


# -- the sweep ----------------------------------------------------------------------------------
def held_out_choices(run: Any, test: pd.DataFrame, arm_names: Sequence[str]) -> dict[str, Any]:
    """The policy's choices on the test rows: arm shares, mean chosen cost, alignment and reward, oracle, best arm."""
    prompts = test.drop_duplicates("query_id")[["query_id", "prompt"]].sort_values("query_id").reset_index(drop=True)
    wide = {col: test.pivot(index="query_id", columns="arm", values=col).loc[prompts["query_id"], list(arm_names)]
            for col in ("reward", "arm_cost", METRIC)}
    probs = run.probabilities(prompts)  # float64 (n_prompts, n_arms)
    rewards = wide["reward"].to_numpy(float)
    costs = wide["arm_cost"].to_numpy(float)
    align = np.nan_to_num(wide[METRIC].to_numpy(float), nan=0.0)  # none arm: nothing drafted, nothing accepted
    arm_means = wide["reward"].mean()
    return {
        "n_test_prompts": int(len(prompts)),
        "arm_share": dict(zip(arm_names, probs.mean(axis=0).tolist())),
        "mean_chosen_cost": float((probs * costs).sum(axis=1).mean()),
        "mean_chosen_align_accept": float((probs * align).sum(axis=1).mean()),
        "policy_reward": float((probs * rewards).sum(axis=1).mean()),
        "oracle_reward": float(rewards.max(axis=1).mean()),
        "best_single_arm": str(arm_means.idxmax()),
        "best_single_arm_reward": float(arm_means.max()),
        "share_zero_cost": float(probs[:, costs.max(axis=0) == 0].sum(axis=1).mean()),
    }


def plot(result: dict, out: Path) -> list[str]:
    """``arm_share.png`` (stacked shares per alpha) and ``chosen_cost.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = [r["alpha"] for r in result["sweep"]]
    labels = [f"{a:g}" for a in alphas]
    x = np.arange(len(alphas))
    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = np.zeros(len(alphas))
    for arm in result["arms"]:
        share = np.array([r["arm_share"][arm] for r in result["sweep"]])
        ax.bar(x, share, bottom=bottom, label=f"{arm} (cost {result['arm_cost'][arm]:.2f})")
        bottom += share
    ax.set_xticks(x, labels)
    ax.set_xlabel("alpha (cost weight)")
    ax.set_ylabel("share of test prompts")
    ax.set_ylim(0, 1)
    ax.set_title(f"Arm chosen by {result['policy']} against alpha")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    share_png = out / "arm_share.png"
    fig.savefig(share_png, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, [r["mean_chosen_cost"] for r in result["sweep"]], marker="o", label="mean arm_cost of the chosen arm")
    ax.plot(x, [r["mean_chosen_align_accept"] for r in result["sweep"]], marker="s", label="mean align_accept kept")
    ax.set_xticks(x, labels)
    ax.set_xlabel("alpha (cost weight)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{result['policy']} on the test split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    cost_png = out / "chosen_cost.png"
    fig.savefig(cost_png, dpi=120)
    plt.close(fig)
    return [str(share_png), str(cost_png)]


def main(log: str | Path | None = None, out: str | Path = "out/alpha_sweep", alphas: Sequence[float] = DEFAULT_ALPHAS,
         policy: str = "regression", models: str | Path | None = None, prompts: str | Path | None = None,
         per_domain: int = DEFAULT_PER_DOMAIN, seed: int = 0, *, settings: dict[str, Any] | None = None,
         max_new_tokens: int | None = None, batch_size: int = 4, threads: int | None = None, plots: bool = True,
         progress: bool = True) -> dict:
    """Run the sweep; returns (and writes to ``OUT/alpha_sweep.json``) every number.

    ``log``: an existing log with ``align_accept`` and ``arm_cost`` (alignment-only or full);
    None builds the alignment-only log under ``OUT/log`` from ``prompts`` (None: ``bandit-log
    prompts`` with ``per_domain`` and ``seed``) and ``models`` (None: the packaged SmolLM2
    models file). ``settings``: the policy's settings (``seed`` defaults to ``seed``).
    """
    from bandit.configs import config_to_json, make_config
    from bandit.runs import train_run
    from logging_data import open_log

    alphas = check_alphas(alphas)
    if log is not None and (models is not None or prompts is not None):
        raise ValueError(f"models and prompts are for building a log; a log was given ({log}): pass one or the other")
    config = make_config(policy, {"seed": seed, **(settings or {})})  # a bad name or setting fails before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if log is None:
        log = build_alignment_log(out, models if models is not None else DEFAULT_MODELS, prompts, per_domain, seed,
                                  max_new_tokens=max_new_tokens, batch_size=batch_size, threads=threads, progress=progress)
    t_build = time.perf_counter() - t0
    base = open_log(log)
    frame = base_outcomes(base)
    arm_names = base.metadata.arm_names
    arm_cost = frame.groupby("arm")["arm_cost"].mean().fillna(0.0).reindex(list(arm_names)).fillna(0.0)
    _say(f"log {base.root}: {frame['query_id'].nunique()} prompts x {len(arm_names)} arms; "
         f"arm_cost {', '.join(f'{a}={c:.3f}' for a, c in arm_cost.items())}")

    sweep = []
    for alpha in alphas:
        folder = out / "alphas" / _label(alpha)
        path = alpha_log(base, frame, alpha, folder / "log")
        run = train_run(path, config, folder / "run", feedback="full", split="train", overwrite=True, progress=False)
        test = open_log(path).read("outcomes")
        test = test[test["split"].astype(object) == "test"]
        numbers = {"alpha": alpha, **held_out_choices(run, test, arm_names)}
        sweep.append(numbers)
        _say(f"{_label(alpha)}: mean chosen cost {numbers['mean_chosen_cost']:.3f}, "
             f"shares {', '.join(f'{a}={s:.2f}' for a, s in numbers['arm_share'].items())}")

    costs = [r["mean_chosen_cost"] for r in sweep]
    test_rows = frame[frame["split"].astype(object) == "test"]
    result = {
        "log": str(base.root), "policy": policy, "settings": config_to_json(config)["settings"],
        "arms": list(arm_names), "arm_kind": {a.name: a.kind for a in base.metadata.arms},
        "arm_cost": {a: float(c) for a, c in arm_cost.items()},
        "test_align_accept": {a: float(v) for a, v in test_rows.groupby("arm")[METRIC].mean().reindex(list(arm_names)).fillna(0.0).items()},
        "n_prompts": {s: int(frame.loc[frame["split"].astype(object) == s, "query_id"].nunique()) for s in ("train", "validation", "test")},
        "sweep": sweep,
        "cost_non_increasing": bool(all(b <= a + 1e-12 for a, b in zip(costs, costs[1:]))),
        "build": dict(base.metadata.extra.get("build", {})),
        "hardware": dict(base.metadata.extra.get("hardware", {})),
        "seconds": {"build": t_build, "total": time.perf_counter() - t0},
    }
    if plots:
        result["figures"] = plot(result, out)
    (out / "alpha_sweep.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def print_table(result: dict) -> None:
    rows = [{"alpha": r["alpha"], **{f"share {a}": r["arm_share"][a] for a in result["arms"]},
             "chosen cost": r["mean_chosen_cost"], "align kept": r["mean_chosen_align_accept"],
             "policy reward": r["policy_reward"], "oracle": r["oracle_reward"], "best arm": r["best_single_arm"]}
            for r in result["sweep"]]
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(f"{result['policy']} on the test split of {result['log']} ({result['n_prompts']['test']} prompts); "
              f"arm costs: {', '.join(f'{a}={c:.3f}' for a, c in result['arm_cost'].items())}")
        print(pd.DataFrame(rows).to_string(index=False))
        print(f"mean chosen cost non-increasing in alpha: {result['cost_non_increasing']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="example: python examples/alpha_sweep.py --per-domain 12 --max-new-tokens 32 --out out/alpha_sweep")
    parser.add_argument("--log", default=None, help="reuse this log (needs align_accept and arm_cost); default: build one")
    parser.add_argument("--out", default="out/alpha_sweep")
    parser.add_argument("--alphas", default=",".join(f"{a:g}" for a in DEFAULT_ALPHAS), help="comma-separated cost weights")
    parser.add_argument("--policy", default="regression", help="policy registry name (bandit-log policies)")
    parser.add_argument("--models", default=None, help=f"models TOML for a built log (default: {DEFAULT_MODELS.name})")
    parser.add_argument("--prompts", default=None, help="prompts parquet for a built log (default: bandit-log prompts)")
    parser.add_argument("--per-domain", type=int, default=DEFAULT_PER_DOMAIN, help="prompts per domain when making prompts")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="override the models file's max_new_tokens")
    parser.add_argument("--batch-size", type=int, default=4, help="prompts per greedy batch")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine 2 threads ran ~10x slower)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON document")
    args = parser.parse_args()
    try:
        alpha_values = [float(a) for a in args.alphas.split(",") if a.strip()]
    except ValueError:
        parser.error(f"--alphas takes comma-separated numbers; got {args.alphas!r}")
    res = main(args.log, args.out, alpha_values, args.policy, args.models, args.prompts, args.per_domain, args.seed,
               max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, threads=args.threads, progress=progress_bars())
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print_table(res)
