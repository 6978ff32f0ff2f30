"""Train every policy on one log, evaluate them off-policy, and pick the one to deploy.

This is the middle of the quickstart (``examples/quickstart.py``) as a library, so that the
examples and the benchmark train and choose the same way:

- ``train_policies(log, out, ...)``: one run folder per policy under ``out`` (the learners with
  the budgets of ``BUDGETS[budget]``, and the baselines), all on the same split and featurizer;
- ``holdout_decisions(log, split, seed)``: a uniform logging policy simulated on a held-out
  split of the full-information log (exact propensities), so off-policy estimates can be
  checked against the true value the outcomes table gives;
- ``select_on_outcomes(runs, outcomes)``: the project's selection rule (``bandit.selection``) on
  a full-information split: exact values, a learned policy only where its paired interval
  against the best fixed arm is above zero, else that arm;
- ``select_policy(result, estimator)``: the learned policy with the best off-policy estimate
  (kept for bandit-feedback logs; ``bandit.selection.select_off_policy`` adds the paired rule);
- ``speedup_totals(rows, weights)``: wall-clock and count-model speed-ups of outcome rows, as the
  quickstart and the benchmark report them.

Selection uses the validation split; the test split is kept for the final measurement, so a
target is never met by tuning on the test prompts.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from logging_data import open_log

#: learning policies, in the order they are reported
LEARNERS = ("regression", "classifier", "taskspec", "reinforce", "vw", "cql", "bcq")
#: budgets per learner: "default" for real logs, "tiny" for tests (seconds on 2 cores)
BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {
        "reinforce": {"n_epochs": 60, "hidden_sizes": [64]},
        "vw": {"n_passes": 5},
        "cql": {"n_steps": 1500},
        "bcq": {"n_steps": 1500},
    },
    "tiny": {
        "reinforce": {"n_epochs": 5, "hidden_sizes": [16]},
        "vw": {"n_passes": 1},
        "cql": {"n_steps": 30, "hidden_units": [16]},
        "bcq": {"n_steps": 30, "hidden_units": [16]},
        "classifier": {"max_iter": 100},
        "taskspec": {"max_iter": 100},
    },
}
#: policies that look at outcomes in hindsight: references only, never deployed
HINDSIGHT = ("oracle",)


@dataclass(frozen=True)
class TrainedPolicies:
    """Run folders by policy name (``fixed:ARM`` for each single arm)."""

    runs: Mapping[str, Path]
    featurizer: str
    split: str

    def load(self) -> dict[str, Any]:
        from bandit.runs import load_run

        return {name: load_run(path) for name, path in self.runs.items()}


def check_plan(learners: Sequence[str], budget: str) -> None:
    """ValueError unless every learner is known and ``budget`` is a key of ``BUDGETS``; callers run
    it before any other work so that a typo fails at once."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}; got {budget!r}")
    unknown = sorted(set(learners) - set(LEARNERS))
    if unknown:
        raise ValueError(f"unknown learner(s) {', '.join(unknown)}; known: {', '.join(LEARNERS)}")


def train_policies(
    log_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    learners: Sequence[str] = LEARNERS,
    budget: str = "default",
    featurizer: str = "hashed",
    split: str = "train",
    seed: int = 0,
    baselines: bool = True,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> TrainedPolicies:
    """Train ``learners`` (and, with ``baselines``, uniform, every fixed arm and the oracle).

    ``settings``: extra per-policy settings over ``BUDGETS[budget]``. Existing run folders are
    replaced. Returns the run folders by name.
    """
    from bandit.configs import make_config
    from bandit.runs import train_run

    check_plan(learners, budget)
    from logging_data import require_valid_log

    require_valid_log(log_path)  # once, not per run
    out = Path(out_dir)
    arms = open_log(log_path).metadata.arm_names
    plan: list[tuple[str, str, dict[str, Any]]] = []
    for name in learners:
        plan.append((name, name, {**BUDGETS[budget].get(name, {}), **dict((settings or {}).get(name, {}))}))
    if baselines:
        plan.append(("uniform", "uniform", {}))
        plan.extend((f"fixed:{arm}", "fixed", {"arm": arm}) for arm in arms)
        plan.append(("oracle", "oracle", {}))
    runs: dict[str, Path] = {}
    for label, policy, values in plan:
        config = make_config(policy, {**values, "featurizer": featurizer, "seed": seed})
        path = out / label.replace(":", "-")
        if progress:
            print(f"train {label}", file=sys.stderr)
        train_run(log_path, config, path, feedback="full", split=split, overwrite=True, progress=progress, validate=False)
        runs[label] = path
    return TrainedPolicies(runs, featurizer, split)


def holdout_decisions(log_path: str | os.PathLike, split: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(decisions, outcomes) of ``split``: a uniform logging policy simulated on its prompts."""
    from logging_data.simulate import UniformLogging, simulate_decisions

    log = open_log(log_path)
    outcomes = log.read("outcomes")
    part = outcomes[outcomes["split"].astype(object) == split]
    if part.empty:
        raise ValueError(f"{log_path}: no outcomes in the {split!r} split (splits present: "
                         f"{', '.join(sorted(map(str, outcomes['split'].dropna().unique())))})")
    decisions = simulate_decisions(part, log.metadata.arm_names, UniformLogging(), np.random.default_rng(seed),
                                   policy_id=f"uniform-{split}")
    return decisions, part


def evaluate_runs(runs: Mapping[str, Any], decisions: pd.DataFrame, outcomes: pd.DataFrame, arm_names: Sequence[str],
                  estimators: Sequence[str] = ("ips", "snips", "dm", "dr", "sndr"), seed: int = 0) -> Any:
    """``bandit.report.evaluate_policies`` of every loaded run on ``decisions`` (true values from ``outcomes``).

    The reward model behind DM/DR is cross-fitted with 5 folds, or one per row on smaller logs.
    """
    from estimators import CrossFitRewardModel, parse_estimator

    from bandit.report import evaluate_policies

    if len(decisions) < 2:
        raise ValueError(f"off-policy evaluation needs at least 2 logged decisions; got {len(decisions)}")
    targets = {name: run.probabilities(decisions) for name, run in runs.items()}
    sources = {name: f"run folder {run.path}" for name, run in runs.items() if getattr(run, "path", None) is not None}
    model = CrossFitRewardModel(n_folds=min(5, len(decisions)), seed=seed)
    return evaluate_policies(decisions, arm_names, targets, [parse_estimator(e) for e in estimators],
                             outcomes=outcomes, reward_model=model, seed=seed, sources=sources)


def select_on_outcomes(runs: Mapping[str, Any], outcomes: pd.DataFrame, arm_names: Sequence[str],
                       level: float = 0.95) -> Any:
    """``bandit.selection.select_exact`` of the loaded ``runs`` on one split of an outcomes table.

    Every run (learned, ``fixed:ARM``, ``uniform``) is scored by its exact value on the split's
    prompts; hindsight references (the oracle) are left out. Prompts missing an arm's outcome
    are an error (the values would not be comparable).
    """
    from bandit.selection import candidate_kind, select_exact
    from logging_data.simulate import reward_matrix

    qids, rewards = reward_matrix(outcomes, arm_names)
    missing = ~np.isfinite(rewards).all(axis=1)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} prompt(s) of the selection split lack some arm's reward "
                         f"(first: query_id={qids[int(np.flatnonzero(missing)[0])]}); the selection needs every arm per prompt")
    frame = prompt_frame(outcomes, qids)
    probs = {name: np.asarray(run.probabilities(frame), dtype=np.float64)
             for name, run in runs.items() if candidate_kind(name) != "hindsight"}
    return select_exact(_with_baselines(probs, len(qids), arm_names), rewards, level)


def _with_baselines(probs: Mapping[str, np.ndarray], n: int, arm_names: Sequence[str]) -> dict[str, np.ndarray]:
    """``probs`` plus every fixed arm and uniform where they are missing: the rule always has them."""
    out = dict(probs)
    for i, arm in enumerate(arm_names):
        out.setdefault(f"fixed:{arm}", np.eye(len(arm_names))[np.full(n, i)])
    out.setdefault("uniform", np.full((n, len(arm_names)), 1.0 / len(arm_names)))
    return out


def select_on_decisions(targets: Mapping[str, np.ndarray], decisions: pd.DataFrame, arm_names: Sequence[str],
                        estimator: str = "dr", level: float = 0.95, seed: int = 0) -> Any:
    """``bandit.selection.select_off_policy`` on a bandit-feedback log: ``targets`` name -> float
    (n, n_arms) probabilities on the ``decisions`` rows (fixed arms and uniform are added); each
    candidate's per-row contributions of ``estimator`` (cross-fitted reward model on hashed prompt
    n-grams where it needs one) are compared paired with the best fixed arm's."""
    from estimators import CrossFitRewardModel, LoggedBatch, parse_estimator

    from bandit.report import decision_actions, hashed_features
    from bandit.selection import candidate_kind, select_off_policy

    decisions = decisions.reset_index(drop=True)
    if len(decisions) < 2:
        raise ValueError(f"off-policy selection needs at least 2 logged decisions; got {len(decisions)}")
    est = parse_estimator(estimator)
    actions = decision_actions(decisions, tuple(arm_names))
    rewards = decisions["reward"].to_numpy(dtype=np.float64)
    props = decisions["propensity"].to_numpy(dtype=np.float64)
    reward_hat = None
    if est.needs_reward_model:
        model = CrossFitRewardModel(n_folds=min(5, len(decisions)), seed=seed)
        reward_hat = model.fit_predict(hashed_features(decisions), actions, rewards, len(arm_names))
    probs = _with_baselines({k: v for k, v in targets.items() if candidate_kind(k) != "hindsight"}, len(decisions), arm_names)
    contributions = {name: est.contributions(LoggedBatch(actions, rewards, props, np.asarray(p, dtype=np.float64), reward_hat))
                     for name, p in probs.items()}
    return select_off_policy(contributions, estimator, level)


def select_policy(result: Any, estimator: str = "dr", candidates: Sequence[str] | None = None) -> str:
    """The deployable policy with the highest ``estimator`` estimate in ``result`` (an EvaluationResult)."""
    best, best_value = None, -np.inf
    for p in result.policies:
        if p.policy in HINDSIGHT or (candidates is not None and p.policy not in candidates):
            continue
        values = [e.value for e in p.estimates if e.estimator == estimator]
        if not values:
            raise ValueError(f"estimator {estimator!r} is not in the evaluation; it has "
                             f"{', '.join(sorted({e.estimator for e in p.estimates}))}")
        if values[0] > best_value:
            best, best_value = p.policy, values[0]
    if best is None:
        raise ValueError("no deployable policy to select (only hindsight baselines were evaluated)")
    return best


def speedup_totals(rows: pd.DataFrame, weights: np.ndarray | None = None) -> dict[str, float]:
    """Aggregate speed-ups of (prompt, arm) rows of an outcomes table, each weighted by its probability.

    ``weights`` float (n_rows,): the policy's probability of the row's arm for its prompt (default
    1: one row per prompt). ``wall``: expected total plain wall time / expected total wall time
    (NaN where wall time was not measured: a replayed log);
    ``count``: expected total tokens / expected total count-model cost (in target steps);
    ``mean_count``: the expected per-prompt count speed-up.
    """
    w = np.ones(len(rows)) if weights is None else np.asarray(weights, dtype=float)
    n_prompts = rows["query_id"].nunique()
    count_cost = rows["n_new_tokens"].astype(float) / rows["speedup_count"].astype(float)
    return {
        "n_prompts": int(n_prompts),
        "wall": (float((w * rows["plain_wall_time_s"].astype(float)).sum() / (w * rows["wall_time_s"].astype(float)).sum())
                 if rows["wall_time_s"].notna().all() and len(rows) else float("nan")),  # NaN: not measured (replay logs)
        "count": float((w * rows["n_new_tokens"]).sum() / (w * count_cost).sum()),
        "mean_count": float((w * rows["speedup_count"]).sum() / n_prompts),
    }


def against_best_arm(probs: np.ndarray, rewards: np.ndarray, speedups: np.ndarray, n_new: np.ndarray,
                     arm_names: Sequence[str], level: float = 0.95, n_bootstrap: int = 2000, seed: int = 0) -> dict[str, Any]:
    """A policy on one held-out set against the set's best single arm (hindsight) and the oracle.

    ``probs`` (n, n_arms): the policy's probabilities; ``rewards``, ``speedups`` (n, n_arms):
    every arm's reward and count speed-up per prompt; ``n_new`` (n,): the target's output length.
    Two measures, each with its own best single arm:

    - ``reward``: the mean per-prompt reward (what the policies learn and the selection uses),
      with a paired normal interval of the difference;
    - ``count_total``: the count speed-up of the whole set, total tokens / total count-model cost
      (what a wall clock over the set measures), with a paired bootstrap interval (prompts
      resampled, ``n_bootstrap`` times, seeded) of the difference.

    The oracle takes the best arm per prompt (the same arm under both measures).
    """
    from bandit.selection import paired_difference

    p, r, s = (np.asarray(a, dtype=np.float64) for a in (probs, rewards, speedups))
    n = np.asarray(n_new, dtype=np.float64)
    cost = n[:, None] / s  # count-model cost of every arm per prompt (target steps)
    values = (p * r).sum(axis=1)
    best_r = int(r.mean(axis=0).argmax())
    d = paired_difference(values, r[:, best_r], level)
    pol_cost = (p * cost).sum(axis=1)
    totals = n.sum() / cost.sum(axis=0)
    best_t = int(totals.argmax())
    oracle_cost = cost[np.arange(len(n)), s.argmax(axis=1)]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(n), (n_bootstrap, len(n)))
    boot = n[idx].sum(axis=1) / pol_cost[idx].sum(axis=1) - n[idx].sum(axis=1) / cost[idx, best_t].sum(axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    policy_total = float(n.sum() / pol_cost.sum())
    oracle_total = float(n.sum() / oracle_cost.sum())
    return {
        "n_prompts": int(len(n)),
        "reward": {"value": float(values.mean()), "best_arm": arm_names[best_r], "best_arm_value": float(r[:, best_r].mean()),
                   "oracle": float(r.max(axis=1).mean()), "diff": d.to_json(), "above_best_arm": bool(d.low > 0)},
        "count_total": {"value": policy_total, "best_arm": arm_names[best_t], "best_arm_value": float(totals[best_t]),
                        "oracle": oracle_total, "of_oracle": policy_total / oracle_total,
                        "gap_closed": (policy_total - totals[best_t]) / (oracle_total - totals[best_t])
                        if oracle_total > totals[best_t] else float("nan"),
                        "diff": {"diff": policy_total - float(totals[best_t]), "low": float(lo), "high": float(hi),
                                 "level": level, "n_bootstrap": n_bootstrap},
                        "above_best_arm": bool(lo > 0), "meets_095_of_oracle": bool(policy_total >= 0.95 * oracle_total)},
        "mean_count": {"value": float((p * s).sum(axis=1).mean()), "oracle": float(s.max(axis=1).mean()),
                       "best_arm_value": float(s.mean(axis=0).max()), "best_arm": arm_names[int(s.mean(axis=0).argmax())]},
    }


def matrices(outcomes: pd.DataFrame, arm_names: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """(prompts frame, rewards, count speed-ups (n, n_arms), n_new (n,)) of an outcomes split;
    ValueError when a prompt lacks an arm's outcome."""
    from logging_data.simulate import reward_matrix

    qids, rewards = reward_matrix(outcomes, arm_names)
    _, speedups = reward_matrix(outcomes, arm_names, value="speedup_count")  # the same rows, in the same order
    bad = ~(np.isfinite(rewards).all(axis=1) & np.isfinite(speedups).all(axis=1))
    if bad.any():
        raise ValueError(f"{int(bad.sum())} prompt(s) lack some arm's reward or speedup_count "
                         f"(first: query_id={qids[int(np.flatnonzero(bad)[0])]}); every arm is needed per prompt")
    frame = prompt_frame(outcomes, qids, extra=("n_new_tokens",))
    return frame.drop(columns="n_new_tokens"), rewards, speedups, frame["n_new_tokens"].to_numpy(dtype=np.float64)


def prompt_frame(outcomes: pd.DataFrame, qids: Sequence[str], extra: Sequence[str] = ()) -> pd.DataFrame:
    """One row per prompt in ``qids`` order (query_id, prompt, domain where present, and ``extra``
    columns), from the first outcomes row of each prompt: what a policy's ``probabilities`` takes."""
    first = outcomes.drop_duplicates("query_id")
    first = first.set_index(first["query_id"].astype(str)).loc[list(qids)]
    return first.reset_index(drop=True)[[c for c in ("query_id", "prompt", "domain", *extra) if c in first.columns]]


def domain_table(outcomes: pd.DataFrame, arm_names: Sequence[str]) -> dict[str, str]:
    """Each domain's best arm on ``outcomes`` (pick it on validation): the arm with the highest count
    speed-up of the domain's whole group (total tokens / total count-model cost). The baseline a
    per-prompt choice must beat to be more than task routing (DESIGN.md, "Baselines")."""
    if "domain" not in outcomes.columns:
        raise ValueError("a domain table needs a `domain` column in the outcomes")
    frame, _, speedups, n_new = matrices(outcomes, arm_names)
    cost = n_new[:, None] / speedups
    out = {}
    for domain in sorted(set(frame["domain"].astype(str))):
        m = frame["domain"].astype(str).to_numpy() == domain
        out[domain] = arm_names[int((n_new[m].sum() / cost[m].sum(axis=0)).argmax())]
    return out


def domain_table_probs(frame: pd.DataFrame, table: Mapping[str, str], arm_names: Sequence[str], fallback: str) -> np.ndarray:
    """float (n, n_arms) one-hot choices of a domain table on ``frame``'s prompts (``fallback`` for a
    domain the table does not know)."""
    idx = [list(arm_names).index(table.get(str(d), fallback)) for d in frame["domain"]]
    return np.eye(len(arm_names))[idx]


def paired_totals(cost_a: np.ndarray, cost_b: np.ndarray, n_new: np.ndarray, level: float = 0.95, n_bootstrap: int = 2000,
                  seed: int = 0) -> dict[str, float]:
    """Speed-up of a whole set under two policies, total tokens / total cost, and a paired bootstrap
    interval of the difference (prompts resampled). ``cost_a``, ``cost_b``, ``n_new``: float (n,)
    per prompt (a cost in any unit common to both: count-model steps, or wall seconds relative to
    plain decoding's: pass the plain time as ``n_new`` then)."""
    a, b, n = (np.asarray(x, dtype=np.float64) for x in (cost_a, cost_b, n_new))
    if not (a.shape == b.shape == n.shape) or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired totals need three float (n,) arrays of the same prompts; got {a.shape}, {b.shape}, {n.shape}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(n), (n_bootstrap, len(n)))
    boot = n[idx].sum(axis=1) / a[idx].sum(axis=1) - n[idx].sum(axis=1) / b[idx].sum(axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    va, vb = float(n.sum() / a.sum()), float(n.sum() / b.sum())
    return {"a": va, "b": vb, "diff": va - vb, "ratio": va / vb, "low": float(lo), "high": float(hi), "level": level,
            "n_prompts": int(len(n)), "n_bootstrap": n_bootstrap}
