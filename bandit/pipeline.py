"""The offline half of train -> select -> test, shared by ``bandit-log compare``, the quickstart, the drafter runs and the benchmarks.

- ``offline_half``: every policy trained on a log's train split, the selection rule on validation,
  the off-policy report, the test split scored for every policy against the best single arm;
- ``select_on_split``, ``off_policy``, ``true_values``: the selection, the off-policy estimates and
  the ground truth of runs trained elsewhere (``bandit-log compare``).

Every speed-up here is a ratio of totals (``bandit.suite.speedup_totals``): total tokens over total
cost, so that long outputs weigh as much as they cost. The live half (decoding with the chosen
policy, pricing under another machine's profile) is ``decoding.pipeline``. Messages go through a
``say`` callable (default: a line on stderr), so that a command prints them its own way.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .suite import speedup_totals

#: the featurizer every policy uses (chosen on the validation split of the shipped log: BENCHMARKS.md)
FEATURIZER = "prompt-stats"
#: the estimators of an off-policy comparison unless told otherwise
DEFAULT_ESTIMATORS = ("ips", "snips", "dr")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def split_rows(frame: pd.DataFrame, split: str | None) -> pd.DataFrame:
    """The rows of ``frame`` in ``split`` (None, ``"all"`` or a table without a ``split`` column: every row)."""
    if split in (None, "all") or "split" not in frame.columns:
        return frame
    return frame[(frame["split"].astype(object) == split).to_numpy()]


def splits_present(frame: pd.DataFrame) -> str:
    """The split names ``frame`` has, sorted and comma-separated (``"none"`` without any): for messages."""
    return ", ".join(sorted(map(str, frame["split"].astype(object).dropna().unique()))) or "none"


def held_out(frame: pd.DataFrame, table: str, say: Callable[[str], None] = _stderr) -> tuple[pd.DataFrame, str | None]:
    """The test rows of ``frame`` when it has any, else every row (split None, said)."""
    if "split" in frame.columns and (frame["split"].astype(object) == "test").any():
        return frame[(frame["split"].astype(object) == "test").to_numpy()].reset_index(drop=True), "test"
    say(f"note: the {table} table has no test split; comparing on every row, including rows the runs may have trained on")
    return frame.reset_index(drop=True), None


def by_policy_ids(decisions: pd.DataFrame, policy_ids: Sequence[str], strict: bool = True) -> pd.DataFrame:
    """The ``decisions`` rows logged by one of ``policy_ids`` (none given: every row); ``strict``:
    a ValueError naming the ids the table does not have."""
    if not policy_ids:
        return decisions
    present = set(decisions["policy_id"].astype(str))
    unknown = sorted(set(policy_ids) - present)
    if strict and unknown:
        raise ValueError(f"--policy-id {', '.join(unknown)}: not in the decisions table (policy_ids: {', '.join(sorted(present))})")
    return decisions[decisions["policy_id"].astype(str).isin(policy_ids)].reset_index(drop=True)


def deployable(runs: Mapping[str, Any]) -> dict[str, Any]:
    """The learned ``runs`` the selection rule chooses among: hindsight runs (the oracle) are
    references, and fixed-arm and uniform runs are added by the rule itself."""
    return {name: run for name, run in runs.items()
            if not getattr(run.config, "hindsight", False) and getattr(run.config, "name", "") not in ("fixed", "uniform")}


def select_on_split(runs: Mapping[str, Any], arm_names: Sequence[str], split: str, *, outcomes: pd.DataFrame | None = None,
                    decisions: pd.DataFrame | None = None, seed: int = 0, say: Callable[[str], None] = _stderr) -> Any:
    """The selection rule (``bandit.selection``) among ``runs``, every fixed arm and uniform on ``split``:
    exact values on ``outcomes``' rows there, else doubly robust estimates on ``decisions``' rows
    (said); None where neither has a row in the split."""
    from .suite import select_on_decisions, select_on_outcomes

    if outcomes is not None and len(split_rows(outcomes, split)):
        return select_on_outcomes(runs, split_rows(outcomes, split), arm_names)
    part = split_rows(decisions, split).reset_index(drop=True) if decisions is not None else None
    if part is None or part.empty:
        return None
    targets = {name: np.asarray(run.probabilities(part), dtype=np.float64) for name, run in runs.items()}
    selection = select_on_decisions(targets, part, arm_names, "dr", seed=seed)
    say(f"note: selection on {split} uses off-policy DR estimates of {len(part)} logged decisions (no outcomes there)")
    return selection


def off_policy(runs: Mapping[str, Any], decisions: pd.DataFrame, arm_names: Sequence[str], *, outcomes: pd.DataFrame | None = None,
               estimators: Sequence[str] = DEFAULT_ESTIMATORS, seed: int = 0, split: str | None = None,
               say: Callable[[str], None] = _stderr) -> Any:
    """``bandit.report.evaluate_policies`` of every run that can score ``decisions`` (the others are
    said and left out; None where none can), with each estimator of ``estimators`` (specs such as
    ``ips:clip=20``) and a cross-fitted reward model; true values from ``outcomes``."""
    try:
        from estimators import CrossFitRewardModel, parse_estimator

        from .report import evaluate_policies
    except ImportError as exc:  # the estimators library is another package of this project
        raise ValueError(f"off-policy comparison needs the estimators library, which cannot be imported: {exc}") from None
    targets = {}
    for name, run in runs.items():
        try:
            targets[name] = np.asarray(run.probabilities(decisions), dtype=np.float64)
        except ValueError as exc:
            say(f"note: {name} cannot be scored on these decisions ({exc}); left out of the off-policy report")
    if not targets:
        return None
    parsed = [parse_estimator(s) for s in (estimators or DEFAULT_ESTIMATORS)]
    say(f"off-policy: {len(targets)} runs x {len(parsed)} estimators on {len(decisions)} decisions (split {split or 'all'})")
    return evaluate_policies(decisions, arm_names, targets, parsed, outcomes=outcomes,
                             reward_model=CrossFitRewardModel(seed=seed), seed=seed,
                             sources={name: f"run folder {run.path}" for name, run in runs.items() if name in targets})


def true_values(runs: Mapping[str, Any], outcomes: pd.DataFrame, arm_names: Sequence[str],
                say: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Each run's exact value on the held-out prompts of ``outcomes`` (``held_out``), with the
    oracle, the best single arm and uniform for reference; prompts missing an arm are skipped."""
    from logging_data.simulate import reward_matrix

    from .suite import prompt_frame

    held, split = held_out(outcomes, "outcomes", say)
    qids, rewards = reward_matrix(held, arm_names)
    complete = np.isfinite(rewards).all(axis=1)
    frame = prompt_frame(held, qids)[["query_id", "prompt"]][complete]
    r = rewards[complete]
    out: dict[str, Any] = {"split": split, "n_prompts": int(complete.sum()), "n_incomplete_skipped": int((~complete).sum())}
    if not complete.any():
        out["note"] = "no held-out prompt has every arm's outcome"
        return out
    per_arm = r.mean(axis=0)
    oracle = float(r.max(axis=1).mean())
    out["references"] = {"oracle": oracle, "uniform": float(r.mean()),
                         "best_arm": arm_names[int(per_arm.argmax())], "best_arm_value": float(per_arm.max()),
                         "arms": dict(zip(arm_names, per_arm.tolist()))}
    out["runs"] = {}
    for name, run in runs.items():
        try:
            probs = run.probabilities(frame)
        except ValueError as exc:  # e.g. an oracle that never saw these prompts
            out["runs"][name] = {"value": None, "note": str(exc)}
            continue
        value = float((probs * r).sum(axis=1).mean())
        out["runs"][name] = {"value": value, "share_of_oracle": value / oracle if oracle else None}
    return out


@dataclass(frozen=True)
class OfflineHalf:
    """What ``offline_half`` found: the trained runs (``trained``: ``bandit.suite.TrainedPolicies``;
    ``runs``: name -> loaded run), the selection on validation and its off-policy report
    (``evaluation``, written to ``report``), the test split of ``outcomes`` scored for every policy
    (``offline``: ``offline_table``) and the winner against the best arm (``test_check``)."""

    outcomes: pd.DataFrame
    trained: Any
    runs: dict[str, Any]
    selection: Any
    evaluation: Any
    report: Path
    offline: pd.DataFrame
    test_check: dict[str, Any]
    train_seconds: float

    @property
    def winner(self) -> str:
        return str(self.selection.chosen)


def train_and_select(log: str | Path, runs_dir: str | Path, outcomes: pd.DataFrame, arm_names: Sequence[str], *,
                     learners: Sequence[str] | None = None, budget: str = "default", featurizer: str = FEATURIZER,
                     seed: int = 0, progress: bool = True) -> tuple[Any, dict[str, Any], Any]:
    """(trained policies, name -> loaded run, selection): every learner and baseline trained on
    ``log``'s train split into ``runs_dir`` (``bandit.suite.train_policies``), then the selection
    rule on the validation split of ``outcomes`` (``log``'s outcomes table)."""
    from .suite import LEARNERS, train_policies

    trained = train_policies(log, runs_dir, learners=tuple(learners or LEARNERS), budget=budget, featurizer=featurizer,
                             seed=seed, progress=progress)
    runs = trained.load()
    selection = select_on_split(runs, arm_names, "validation", outcomes=outcomes)
    if selection is None:
        raise ValueError(f"{log}: the outcomes table has no validation split to select on")
    return trained, runs, selection


def offline_half(log: str | Path, out: str | Path, *, learners: Sequence[str] | None = None, budget: str = "default",
                 featurizer: str = FEATURIZER, seed: int = 0, progress: bool = True,
                 say: Callable[[str], None] = _stderr) -> OfflineHalf:
    """Train every policy on ``log``'s train split (runs under ``out/runs``), select on validation
    (with the off-policy report of a uniform logging policy simulated there, under ``out/report``),
    and score the test split: steps 1 to 3 of the quickstart."""
    from logging_data import open_log

    from .report import write_html_report
    from .suite import evaluate_runs, holdout_decisions

    t0 = time.perf_counter()
    opened = open_log(log)
    arm_names = opened.metadata.arm_names
    outcomes = opened.read("outcomes")
    say(f"log {log}: {outcomes['query_id'].nunique()} prompts x {len(arm_names)} arms ({', '.join(arm_names)}); "
        f"reward: {opened.metadata.reward.kind}")
    say(f"1/4 training every policy on the train split (featurizer {featurizer})")
    trained, runs, selection = train_and_select(log, Path(out) / "runs", outcomes, arm_names, learners=learners, budget=budget,
                                                featurizer=featurizer, seed=seed, progress=progress)
    t_train = time.perf_counter() - t0
    say("2/4 selection on the validation split: exact values, paired intervals against the best fixed arm")
    say(f"   {selection.table()}".replace("\n", "\n   "))
    decisions, _ = holdout_decisions(log, "validation", seed=seed)
    evaluation = evaluate_runs(runs, decisions, split_rows(outcomes, "validation"), arm_names, seed=seed)
    report = write_html_report(evaluation, Path(out) / "report")
    say(f"   off-policy report (uniform logging simulated on validation, true values beside): {report}")
    say("3/4 test split: every policy, every single arm and the oracle on the log's outcomes")
    test_outcomes = split_rows(outcomes, "test")
    return OfflineHalf(outcomes, trained, runs, selection, evaluation, Path(report), offline_table(runs, test_outcomes, arm_names),
                       check_on_test(runs[selection.chosen], test_outcomes, arm_names), t_train)


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
