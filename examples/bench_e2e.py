"""End-to-end benchmark: plain decoding, every single arm, the oracle and every trained policy, in one run.

    python examples/bench_e2e.py --per-domain 6 --threads 1 --json

On held-out prompts of mixed domains (the test split of the log the policies are trained on,
which they never saw), this run measures *live*, with real assisted decoding on the real target:
plain greedy decoding and every arm of the models file, for every prompt (``decoding.build``:
warm-up and repeats as given, median wall time, deterministic counts, the lossless check
against plain greedy). Then every trained policy chooses an arm per prompt (timed: features +
policy), and its numbers are the live measurements of the arm it chose for that prompt in this
same run; the oracle takes the best arm per prompt in hindsight under the training reward.
Greedy decoding is deterministic, so decoding the chosen arm again would repeat the same
computation; the decision loop itself is exercised by the quickstart (``bandit-log decode``).

Reported per domain and overall: tokens/s, speed-up over plain decoding (wall clock: total plain
time / total time; count model: ``decoding.calibrate``), acceptance (accepted / drafted
tokens), the share of prompts whose output is identical to plain greedy (must be 100%), and the
time spent choosing as a share of decoding time. The targets of issue 8 are checked and
printed: the best policy's overall speed-up >= 0.95 x the oracle's, closing >= 80% of the gap
between the best single arm and the oracle, choosing under 1% of decoding time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bandit.suite import speedup_totals

HERE = Path(__file__).resolve().parent
SHIPPED_LOG = HERE / "data" / "smollm2-log"
SHIPPED_MODELS = HERE / "models" / "smollm2.toml"
REFERENCE = ("plain",)


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def summarize(rows: pd.DataFrame) -> dict[str, float]:
    """Aggregate live measurements of one arm choice per prompt (columns as in the outcomes table)."""
    totals = speedup_totals(rows)
    drafted = float(rows["draft_tokens"].fillna(0).sum())
    return {
        "n_prompts": totals["n_prompts"],
        "tokens_per_s": float(rows["n_new_tokens"].sum() / rows["wall_time_s"].astype(float).sum()),
        "speedup_wall": totals["wall"],
        "speedup_count": totals["count"],
        "acceptance": float(rows["accepted_tokens"].fillna(0).sum() / drafted) if drafted else float("nan"),
        "identical_to_greedy": float(rows["lossless"].astype(bool).mean()),
    }


def policy_rows(measured: pd.DataFrame, choice: pd.Series) -> pd.DataFrame:
    """The measured rows of the arm ``choice[query_id]`` for each prompt."""
    idx = measured.set_index(["query_id", "arm"])
    rows = idx.loc[list(zip(choice.index, choice.to_numpy()))].reset_index()
    return rows


def table(measured: pd.DataFrame, choices: dict[str, pd.Series], choose_s: dict[str, pd.Series]) -> pd.DataFrame:
    """One row per (policy, domain) including '(all)'."""
    records = []
    for name, choice in choices.items():
        rows = policy_rows(measured, choice)
        seconds = choose_s.get(name)
        for domain, part in [("(all)", rows), *rows.groupby("domain", observed=True)]:
            rec = {"policy": name, "domain": str(domain), **summarize(part)}
            if seconds is not None:
                rec["choose_share"] = float(seconds.loc[part["query_id"]].sum() / part["wall_time_s"].sum())
                rec["choose_ms_per_prompt"] = float(seconds.loc[part["query_id"]].mean() * 1e3)
            records.append(rec)
    return pd.DataFrame.from_records(records)


def targets(overall: pd.DataFrame, learned: Sequence[str], arms: Sequence[str], metric: str) -> dict[str, Any]:
    """Issue 8's targets on ``metric`` (speedup_count or speedup_wall) from the overall rows."""
    v = overall.set_index("policy")[metric]
    best_arm = max(arms, key=lambda a: v[f"fixed:{a}"])
    best_policy = max(learned, key=lambda p: v[p])
    oracle, single, pol = float(v["oracle"]), float(v[f"fixed:{best_arm}"]), float(v[best_policy])
    gap = oracle - single
    return {
        "metric": metric, "best_policy": best_policy, "best_policy_speedup": pol, "oracle_speedup": oracle,
        "best_single_arm": best_arm, "best_single_arm_speedup": single,
        "of_oracle": pol / oracle, "gap_closed": (pol - single) / gap if gap > 0 else float("nan"),
        "meets_095_of_oracle": bool(pol >= 0.95 * oracle),
        "meets_80pct_of_gap": bool(gap > 0 and (pol - single) >= 0.8 * gap) if gap > 0 else None,
    }


def main(log: str | Path = SHIPPED_LOG, models: str | Path = SHIPPED_MODELS, *, out: str | Path = "out/bench",
         runs: str | Path | None = None, per_domain: int | None = 6, split: str = "test", repeats: int = 1,
         warmup: int = 1, threads: int | None = 1, learners: Sequence[str] | None = None, budget: str = "default",
         seed: int = 0, calibration: str = "log", progress: bool = True) -> dict:
    """Run the benchmark; returns every number (also written to ``OUT/bench.json``).

    ``calibration``: ``"log"`` prices the count model with the training log's recorded step costs
    (the reward the policies learned, comparable across runs); ``"fresh"`` calibrates this machine now.
    """
    from bandit.runs import load_run
    from bandit.suite import LEARNERS, train_policies
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.calibrate import Calibration
    from decoding.models import load_models_config
    from logging_data import open_log

    if calibration not in ("log", "fresh"):
        raise ValueError(f"calibration must be 'log' or 'fresh'; got {calibration!r}")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    opened = open_log(log)
    arm_names = opened.metadata.arm_names
    cfg = load_models_config(models)
    if cfg.arm_names != arm_names:
        raise ValueError(f"models file {models} has arms {', '.join(cfg.arm_names)}; log {log} has {', '.join(arm_names)}")
    learners = tuple(learners or LEARNERS)
    if runs is None:
        _say(f"training {', '.join(learners)} and the baselines on the train split of {log}")
        trained = train_policies(log, out / "runs", learners=learners, budget=budget, seed=seed, progress=progress)
        run_paths = {k: v for k, v in trained.runs.items() if k in learners}
    else:
        run_paths = {p.name: p for p in sorted(Path(runs).iterdir()) if p.name in learners}
    loaded = {name: load_run(path) for name, path in run_paths.items()}

    outcomes = opened.read("outcomes")
    held = outcomes[outcomes["split"].astype(object) == split].drop_duplicates("query_id").sort_values("query_id")
    if per_domain is not None:
        held = held.groupby("domain", observed=True, group_keys=False).head(per_domain)
    if held.empty:
        raise ValueError(f"{log}: no prompts in the {split!r} split to benchmark on")
    prompts_file = out / "bench_prompts.parquet"
    held[["query_id", "prompt", "domain", "split"]].to_parquet(prompts_file, index=False)
    live_log = out / "bench_log"
    if live_log.exists():
        import shutil

        shutil.rmtree(live_log)
    _say(f"measuring plain decoding and {len(arm_names)} arms live on {len(held)} held-out prompts "
         f"(repeats={repeats}, warmup={warmup}, threads={threads})")
    t_measure = time.perf_counter()
    costs = None
    if calibration == "log":
        recorded = opened.metadata.extra.get("calibration")
        if recorded is None:
            raise ValueError(f"{log} records no calibration; run with calibration='fresh' (--calibration fresh)")
        costs = Calibration.from_json(recorded)
    summary = build_log(prompts_file, cfg, live_log,
                        BuildConfig(reward=reward_definition("speedup_count"), repeats=repeats, warmup=warmup),
                        command="examples/bench_e2e.py", threads=threads, progress=progress, calibration=costs)
    t_measure = time.perf_counter() - t_measure
    measured = open_log(live_log).read("outcomes")
    qids = measured.drop_duplicates("query_id")[["query_id", "prompt", "domain"]].set_index("query_id")

    choices: dict[str, pd.Series] = {}
    choose_s: dict[str, pd.Series] = {}
    rng = np.random.default_rng(seed)
    for name, run in loaded.items():
        run.choose(str(qids["prompt"].iloc[0]), rng)  # warm-up: first-call imports are not choosing cost
        arms_chosen, secs = [], []
        for qid, row in qids.iterrows():
            arm, _, seconds = run.choose(str(row["prompt"]), rng)
            arms_chosen.append(arm)
            secs.append(seconds)
        choices[name] = pd.Series(arms_chosen, index=qids.index)
        choose_s[name] = pd.Series(secs, index=qids.index)
    for arm in arm_names:
        choices[f"fixed:{arm}"] = pd.Series(arm, index=qids.index)
    wide = measured.pivot(index="query_id", columns="arm", values="speedup_count").loc[qids.index, list(arm_names)]
    choices["oracle"] = wide.idxmax(axis=1)
    result_table = table(measured, choices, choose_s)
    overall = result_table[result_table["domain"] == "(all)"]
    result = {
        "log": str(log), "models": str(models), "split": split, "n_prompts": int(len(qids)),
        "arms": list(arm_names), "learners": list(loaded), "repeats": repeats, "warmup": warmup, "threads": threads,
        "calibration_source": calibration,
        "calibration": summary.calibration, "lossless_failures": summary.n_lossless_failures,
        "identical_to_greedy_all_rows": float(measured["lossless"].astype(bool).mean()),
        "table": result_table.to_dict(orient="records"),
        "targets": {m: targets(overall, list(loaded), arm_names, m) for m in ("speedup_count", "speedup_wall")},
        "chosen_arms": {k: v.value_counts().to_dict() for k, v in choices.items()},
        "seconds": {"measure": t_measure, "total": time.perf_counter() - t0},
        "machine": open_log(live_log).metadata.extra.get("hardware"),
    }
    if loaded:
        shares = [r.get("choose_share", 0.0) for r in result["table"] if r["domain"] == "(all)" and r["policy"] in loaded]
        result["max_choose_share"] = float(max(shares))
    (out / "bench.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def print_result(res: dict) -> None:
    t = pd.DataFrame(res["table"])
    cols = ["speedup_count", "speedup_wall", "tokens_per_s", "acceptance", "identical_to_greedy", "choose_share"]
    with pd.option_context("display.width", 180, "display.precision", 3, "display.max_rows", 200):
        overall = t[t["domain"] == "(all)"].set_index("policy")
        print(f"{res['n_prompts']} held-out prompts ({res['split']} split), arms {', '.join(res['arms'])}; "
              f"threads={res['threads']} repeats={res['repeats']} warmup={res['warmup']}; "
              f"count model priced with the {res['calibration_source']} calibration")
        print(overall[[c for c in cols if c in overall]].sort_values("speedup_count", ascending=False).to_string())
        for metric in ("speedup_count", "speedup_wall"):
            print(f"\n{metric} per domain:")
            print(t.pivot(index="policy", columns="domain", values=metric).to_string())
        for metric, tg in res["targets"].items():
            print(f"\n[{metric}] best policy {tg['best_policy']} {tg['best_policy_speedup']:.3f}x; oracle "
                  f"{tg['oracle_speedup']:.3f}x; best single arm {tg['best_single_arm']} {tg['best_single_arm_speedup']:.3f}x; "
                  f"{tg['of_oracle']:.3f} of the oracle (target 0.95: {'met' if tg['meets_095_of_oracle'] else 'NOT met'}); "
                  f"gap closed {tg['gap_closed']:.2f} (target 0.80: "
                  f"{'met' if tg['meets_80pct_of_gap'] else 'NOT met'})")
        if "max_choose_share" in res:
            print(f"choosing (features + policy): at most {100 * res['max_choose_share']:.3f}% of decoding time (target < 1%)")
        print(f"output identical to plain greedy: {100 * res['identical_to_greedy_all_rows']:.1f}% of (prompt, arm) runs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", default=str(SHIPPED_LOG))
    parser.add_argument("--models", default=str(SHIPPED_MODELS))
    parser.add_argument("--runs", default=None, help="folder of trained run folders (default: train them now)")
    parser.add_argument("--per-domain", type=int, default=6, help="held-out prompts per domain (0: all)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="out/bench")
    parser.add_argument("--calibration", choices=["log", "fresh"], default="log",
                        help="count-model step costs: the training log's (default) or measured now")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = main(args.log, args.models, out=args.out, runs=args.runs, per_domain=args.per_domain or None,
               repeats=args.repeats, warmup=args.warmup, threads=args.threads, calibration=args.calibration)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print_result(res)
    sys.exit(1 if res["lossless_failures"] else 0)
