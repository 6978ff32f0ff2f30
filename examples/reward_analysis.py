"""Reward analysis of a full-information log with plain pandas (no import of this package).

A log is a directory of Parquet parts; anyone with pandas can read it. This script shows it:
per-domain, per-arm mean reward and speed-up pivots, and the share of prompts where each arm
is the best one (the room a per-prompt policy has over any single arm).

    python examples/reward_analysis.py LOG --out out/reward_analysis

Writes ``reward_analysis.json`` (the numbers) and ``reward_by_domain.png`` /
``best_arm_share.png`` (the same, drawn) into ``--out``; prints the pivots on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

SPEEDUP_COLUMNS = ("speedup_count", "speedup_wall")


def _pivot(outcomes: pd.DataFrame, value: str) -> pd.DataFrame:
    table = outcomes.pivot_table(index="domain", columns="arm", values=value, aggfunc="mean", observed=True)
    overall = outcomes.groupby("arm", observed=True)[value].mean().rename("(all)")
    return pd.concat([table, overall.to_frame().T])


def analyse(outcomes: pd.DataFrame) -> dict:
    """The numbers: reward and speed-up pivots (domain × arm) and the best-arm shares."""
    outcomes = outcomes.copy()
    outcomes["domain"] = outcomes["domain"].astype(object).fillna("(none)").astype(str)
    outcomes["arm"] = outcomes["arm"].astype(str)
    wide = outcomes.pivot(index="query_id", columns="arm", values="reward")
    best = wide.idxmax(axis=1)
    domain_of = outcomes.drop_duplicates("query_id").set_index("query_id")["domain"]
    share = pd.crosstab(domain_of.loc[best.index], best, normalize="index")
    share.loc["(all)"] = best.value_counts(normalize=True)
    share = share.fillna(0.0)
    oracle = wide.max(axis=1).groupby(domain_of.loc[wide.index]).mean()
    result = {
        "n_prompts": int(wide.shape[0]),
        "arms": list(wide.columns),
        "reward": _pivot(outcomes, "reward").round(6).to_dict(orient="index"),
        "best_arm_share": share.round(6).to_dict(orient="index"),
        "oracle_reward_by_domain": oracle.round(6).to_dict(),
        "oracle_reward": round(float(wide.max(axis=1).mean()), 6),
        "best_single_arm": str(wide.mean().idxmax()),
        "best_single_arm_reward": round(float(wide.mean().max()), 6),
    }
    for col in SPEEDUP_COLUMNS:
        if col in outcomes.columns and outcomes[col].notna().any():
            result[col] = _pivot(outcomes, col).round(6).to_dict(orient="index")
    return result


def _plot(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = [("reward", "reward_by_domain.png", False, "mean reward", "Mean reward per domain and arm"),
               ("best_arm_share", "best_arm_share.png", True, "share of prompts where the arm is best", "Best arm per prompt, by domain")]
    for key, name, stacked, ylabel, title in figures:
        fig, ax = plt.subplots(figsize=(7, 4))
        pd.DataFrame(result[key]).T.plot.bar(stacked=stacked, ax=ax)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
    return [name for _, name, *_ in figures]


def main(log: str | Path, out: str | Path = "out/reward_analysis", plots: bool = True) -> dict:
    """Analyse ``LOG/outcomes`` with pandas alone; write JSON (and PNGs) under ``out``."""
    table = Path(log) / "outcomes"
    if not table.is_dir():
        raise FileNotFoundError(f"{table}: no outcomes table (expected a directory of Parquet parts)")
    outcomes = pd.read_parquet(table)
    if outcomes.empty:
        raise ValueError(f"{table}: the outcomes table has no rows")
    result = analyse(outcomes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result["figures"] = _plot(result, out) if plots else []
    (out / "reward_analysis.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--out", default="out/reward_analysis")
    args = parser.parse_args()
    res = main(args.log, args.out)
    with pd.option_context("display.width", 140, "display.precision", 3):
        print("mean reward (domain × arm):")
        print(pd.DataFrame(res["reward"]).T)
        print("\nshare of prompts where each arm is best:")
        print(pd.DataFrame(res["best_arm_share"]).T)
        for col in SPEEDUP_COLUMNS:
            if col in res:
                print(f"\nmean {col} (domain × arm):")
                print(pd.DataFrame(res[col]).T)
    print(f"\nwrote {args.out}/reward_analysis.json", file=sys.stderr)
