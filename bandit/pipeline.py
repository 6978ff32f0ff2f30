"""The offline half of train -> select -> test, shared by the quickstart, the drafter runs and the benchmarks.

Every speed-up here is a ratio of totals (``bandit.suite.speedup_totals``): total tokens over total
cost, so that long outputs weigh as much as they cost. The live half (decoding with the chosen
policy, pricing under another machine's profile) is ``decoding.pipeline``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .suite import speedup_totals


def offline_table(runs: dict[str, Any], outcomes: pd.DataFrame, arm_names: Sequence[str]) -> pd.DataFrame:
    """Per policy and domain: the speed-ups its choices get on ``outcomes`` (one split), in expectation
    over the policy's probabilities (exactly its choices for a greedy policy)."""
    qframe = outcomes.drop_duplicates("query_id")[["query_id", "prompt", "domain"]].reset_index(drop=True)
    rows = outcomes.set_index(["query_id", "arm"]).loc[
        [(q, a) for q in qframe["query_id"] for a in arm_names]].reset_index()
    rows["domain"] = np.repeat(qframe["domain"].to_numpy(), len(arm_names))
    records = []
    for name, run in runs.items():
        weights = run.probabilities(qframe).reshape(-1)  # row-major: prompt, then arm, as ``rows``
        for domain in ["(all)", *sorted(rows["domain"].dropna().unique())]:
            mask = np.ones(len(rows), bool) if domain == "(all)" else (rows["domain"] == domain).to_numpy()
            records.append({"policy": name, "domain": str(domain), **speedup_totals(rows[mask], weights[mask])})
    return pd.DataFrame.from_records(records)


def live_table(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per domain of a live run's ``decisions``: wall and count speed-ups (ratios of totals), tokens
    per second, lossless share, the share of wall time spent choosing, the arms chosen."""
    records = []
    for domain, part in [("(all)", decisions), *decisions.groupby("domain", observed=True)]:
        rows = pd.DataFrame({"query_id": part["query_id"], "n_new_tokens": part["n_new_tokens"],
                             "speedup_count": part["x_speedup_count"], "wall_time_s": part["wall_time_s"],
                             "plain_wall_time_s": part["x_plain_wall_time_s"]})
        totals = speedup_totals(rows)
        records.append({
            "domain": str(domain), "n_prompts": int(len(part)), "wall": totals["wall"], "count": totals["count"],
            "tokens_per_s": float(part["n_new_tokens"].sum() / part["wall_time_s"].sum()),
            "identical_to_greedy": float(part["lossless"].astype(bool).mean()),
            "choose_share": float(part["choose_time_s"].sum() / part["wall_time_s"].sum()),
            "arms": part["arm"].astype(str).value_counts().to_dict(),
        })
    return pd.DataFrame.from_records(records)


def held_out_slice(outcomes: pd.DataFrame, per_domain: int, split: str = "test") -> pd.DataFrame:
    """The first ``per_domain`` prompts of each domain in ``split`` as a prompts table."""
    q = outcomes[outcomes["split"].astype(object) == split].drop_duplicates("query_id")
    q = q.sort_values("query_id").groupby("domain", observed=True, group_keys=False).head(per_domain)
    return q[["query_id", "prompt", "domain", "split"]].reset_index(drop=True)


def check_on_test(run: Any, outcomes: pd.DataFrame, arm_names: Sequence[str]) -> dict:
    """The chosen policy on ``outcomes`` (the test split) against the best single arm *of that split*
    (hindsight: the stricter comparison) and the oracle (``bandit.suite.against_best_arm``)."""
    from .suite import against_best_arm, matrices

    frame, rewards, speedups, n_new = matrices(outcomes, arm_names)
    return against_best_arm(run.probabilities(frame), rewards, speedups, n_new, arm_names)


def arm_domain_speedups(outcomes: pd.DataFrame, split: str | None = "test", column: str = "speedup_count") -> dict[str, dict[str, float]]:
    """Per arm and domain of ``outcomes`` (rows of ``split``; None: every row): the count speed-up
    priced in ``column``, a ratio of totals."""
    f = outcomes if split is None else outcomes[outcomes["split"].astype(str) == split]
    table: dict[str, dict[str, float]] = {}
    for (arm, d), part in f.groupby([f["arm"].astype(str), f["domain"].astype(str)]):
        rows = pd.DataFrame({"query_id": part["query_id"] if "query_id" in part else np.arange(len(part)),
                             "n_new_tokens": part["n_new_tokens"], "speedup_count": part[column],
                             "wall_time_s": np.nan, "plain_wall_time_s": np.nan})
        table.setdefault(arm, {})[d] = speedup_totals(rows)["count"]
    return table


def plot_speedups(offline: pd.DataFrame, live: pd.DataFrame, winner: str, path: Path, say: Any = None) -> Path | None:
    """``speedups.png``: test-split speed-ups per policy (count and wall) and the live run by domain
    (None, said through ``say`` or on stderr, where matplotlib is not installed: e.g. a bare GPU machine)."""
    try:
        import matplotlib
    except ImportError:
        message = "no figure: matplotlib is not installed (the tables and the JSON have every number)"
        (say or (lambda m: print(m, file=sys.stderr, flush=True)))(message)
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    overall = offline[offline["domain"] == "(all)"].set_index("policy")[["count", "wall"]].sort_values("count")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    overall.plot.barh(ax=ax1)
    ax1.axvline(1.0, color="grey", lw=0.8)
    ax1.set_xlabel("speed-up over plain decoding (test split, from the log)")
    ax1.set_title("Every policy, single arm and the oracle")
    if live.empty:
        ax2.set_axis_off()
        ax2.set_title("Live: skipped")
    else:
        live.set_index("domain")[["count", "wall"]].plot.bar(ax=ax2)
        ax2.axhline(1.0, color="grey", lw=0.8)
        ax2.set_ylabel("speed-up over plain decoding")
        ax2.set_title(f"Live: {winner} on held-out prompts")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log2_sizes(n_total: int, start: int = 4) -> list[int]:
    """Training sizes on a log-2 scale for a learning curve: ``start, 2*start, ...`` below ``n_total``, then ``n_total``."""
    if n_total < 1:
        raise ValueError(f"the train split has no prompts (n_train={n_total})")
    if start < 1:
        raise ValueError(f"a learning curve starts at 1 prompt or more; got start={start}")
    sizes, n = [], start
    while n < n_total:
        sizes.append(n)
        n *= 2
    return sizes + [n_total]
