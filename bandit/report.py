"""Off-policy comparison of several target policies on one decisions log, and its HTML report.

``evaluate_policies`` takes the logged decisions (a ``decisions`` table frame), named target
policies given as probability matrices aligned with its rows, and a list of estimators; it
fits one cross-fitted reward model (when an estimator needs one), estimates every (policy,
estimator) pair with its interval and diagnostics, and adds each policy's true value where the
outcomes table covers the decisions' prompts. ``write_html_report`` turns the result into a
self-contained ``report.html`` (plots embedded as base64 PNG, drawn with matplotlib's Agg
canvas) and ``report.json`` with the numbers.

Baseline target policies (``baseline_probs``): ``uniform``, ``fixed:ARM`` and ``oracle`` (the
best arm per prompt in hindsight; needs the outcomes table).
"""

from __future__ import annotations

import base64
import html
import io
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from estimators import (CrossFitRewardModel, Diagnostics, Estimate, EstimatorBase, LoggedBatch, UndefinedEstimateError, diagnose,
                        normaliser_gap)
from logging_data.files import json_text, write_text_atomic
from logging_data.outputs import REPORT, check_output
from logging_data.propensities import PropensityWarning, check_propensities, decision_context
from logging_data.simulate import reward_matrix, true_policy_value

BASELINES = ("uniform", "fixed:ARM", "oracle")
HASH_FEATURES = 2**14

# Said wherever DM is reported: its interval is not a full account of its uncertainty.
DM_INTERVAL_NOTE = ("dm: its interval covers only how the reward model's predictions vary across rows, not the "
                    "model's own error, so it understates DM's uncertainty (DR's interval includes the logged residuals)")


# -- inputs --------------------------------------------------------------------------------------
def decision_actions(decisions: pd.DataFrame, arm_names: Sequence[str]) -> np.ndarray:
    """int64 (n,): the column index of each decision's arm; unknown arms are an error."""
    idx = pd.Index(list(arm_names)).get_indexer(decisions["arm"].astype(str).to_numpy(dtype=object))
    bad = idx < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"decisions name {int(bad.sum())} arm(s) outside the arm list (first: row {i}, arm {decisions['arm'].iloc[i]!r}); "
            f"arms: {', '.join(arm_names)}"
        )
    return idx.astype(np.int64)


def outcome_rewards_for(decisions: pd.DataFrame, outcomes: pd.DataFrame, arm_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rewards float64 (n, n_arms) of every decision's prompt, NaN where unmeasured; covered bool (n,)).

    ``covered[i]`` says whether the outcomes table has any row for decision i's ``query_id``.
    """
    qids, matrix = reward_matrix(outcomes, arm_names)
    pos = pd.Index(qids).get_indexer(decisions["query_id"].astype(str).to_numpy(dtype=object))
    covered = pos >= 0
    out = np.full((len(decisions), len(arm_names)), np.nan)
    out[covered] = matrix[pos[covered]]
    return out, covered


def baseline_probs(spec: str, decisions: pd.DataFrame, arm_names: Sequence[str], outcomes: pd.DataFrame | None = None) -> np.ndarray:
    """float64 (n, n_arms) probabilities of a baseline on the decisions' rows.

    ``spec``: ``uniform``; ``fixed:ARM`` (always the arm named ARM); ``oracle`` (the best arm per
    prompt in hindsight, ties to the lowest index; needs ``outcomes`` covering every decision).
    """
    from bandit.policies.baselines import fixed_probabilities, oracle_probabilities, uniform_probabilities

    n, k = len(decisions), len(arm_names)
    if spec == "uniform":
        return uniform_probabilities(n, k)
    if spec.startswith("fixed:"):
        arm = spec.partition(":")[2]
        if arm not in arm_names:
            raise ValueError(f"baseline {spec!r}: unknown arm {arm!r}; arms: {', '.join(arm_names)}")
        return fixed_probabilities(n, k, list(arm_names).index(arm))
    if spec == "oracle":
        if outcomes is None or outcomes.empty:
            raise ValueError("baseline 'oracle' needs the log's outcomes table (the best arm per prompt in hindsight); this log has none")
        rewards, covered = outcome_rewards_for(decisions, outcomes, arm_names)
        none = ~covered | np.isnan(rewards).all(axis=1)
        if none.any():
            i = int(np.flatnonzero(none)[0])
            raise ValueError(
                f"baseline 'oracle' needs outcomes for every decision; {int(none.sum())} decision(s) have none "
                f"(first: query_id={decisions['query_id'].iloc[i]})"
            )
        return oracle_probabilities(rewards)
    raise ValueError(f"unknown baseline {spec!r}; expected one of: {', '.join(BASELINES)}")


def hashed_features(decisions: pd.DataFrame, n_features: int = HASH_FEATURES) -> Any:
    """scipy sparse float64 (n, n_features): hashed word 1-2-grams of the prompt plus its domain.

    Stateless (nothing to fit), so the same prompt always maps to the same row.
    """
    from sklearn.feature_extraction.text import HashingVectorizer

    prompts = decisions["prompt"].astype(str).fillna("")
    domains = decisions["domain"].astype(object).where(decisions["domain"].notna(), "none") if "domain" in decisions else "none"
    text = prompts + " __domain_" + pd.Series(domains, index=decisions.index).astype(str)
    vec = HashingVectorizer(n_features=n_features, ngram_range=(1, 2), alternate_sign=False, norm="l2")
    return vec.transform(text.tolist())


# -- the result ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyEvaluation:
    """One target policy: its estimates (one per estimator), true value if known, weights.

    ``weights`` float64 (n,): the raw importance weights target_prob(logged arm) / propensity.
    """

    policy: str
    estimates: tuple[Estimate, ...]
    true_value: float | None
    diagnostics: Diagnostics
    weights: np.ndarray

    def to_json(self) -> dict:
        q = np.quantile(self.weights, [0.0, 0.5, 0.9, 0.99, 1.0])
        return {
            "policy": self.policy,
            "true_value": self.true_value,
            "diagnostics": self.diagnostics.to_json(),
            "weight_quantiles": dict(zip(["min", "p50", "p90", "p99", "max"], q.tolist())),
            "share_zero_weight": float((self.weights == 0).mean()),
            "estimates": [e.to_json() for e in self.estimates],
        }


@dataclass(frozen=True)
class EvaluationResult:
    """Every (policy, estimator) estimate on one decisions log."""

    policies: tuple[PolicyEvaluation, ...]
    arm_names: tuple[str, ...]
    n: int
    logging_policy_ids: tuple[str, ...]
    ci: str
    level: float
    reward_model: str | None
    warnings: tuple[str, ...]
    reward_range: tuple[float, float] | None = None  # intervals were clipped to it

    def rows(self) -> list[dict]:
        """One flat dict per (policy, estimator): the table ``bandit-log evaluate`` prints."""
        out = []
        for p in self.policies:
            for e in p.estimates:
                out.append(
                    {
                        "policy": p.policy,
                        "estimator": e.estimator,
                        "estimate": e.value,
                        "ci_low": e.ci_low,
                        "ci_high": e.ci_high,
                        "std_err": e.std_err,
                        "ess": e.diagnostics.effective_sample_size,
                        "max_weight": e.diagnostics.max_weight,
                        "true_value": p.true_value,
                        "covers_truth": None if p.true_value is None else e.covers(p.true_value),
                    }
                )
        return out

    def to_json(self) -> dict:
        return {
            "n": self.n,
            "arms": list(self.arm_names),
            "logging_policy_ids": list(self.logging_policy_ids),
            "ci": self.ci,
            "level": self.level,
            "reward_model": self.reward_model,
            "warnings": list(self.warnings),
            "reward_range": list(self.reward_range) if self.reward_range is not None else None,
            "rows": self.rows(),
            "policies": [p.to_json() for p in self.policies],
        }


# -- evaluation ----------------------------------------------------------------------------------
def context_features(decisions: pd.DataFrame) -> tuple[np.ndarray | None, list[str]]:
    """The reward model's features from a decisions table's numeric ``x_*`` context columns
    (``bandit-log import --context``; ``x_position`` left out), each standardized; (None, []) when
    it has none."""
    cols = [c for c in decisions.columns if str(c).startswith("x_") and c != "x_position" and decisions[c].dtype.kind in "fiu"]
    if not cols:
        return None, []
    x = decisions[cols].to_numpy(dtype=np.float64)
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0), cols


def evaluate_policies(
    decisions: pd.DataFrame,
    arm_names: Sequence[str],
    targets: Mapping[str, np.ndarray],
    estimators: Sequence[EstimatorBase],
    *,
    outcomes: pd.DataFrame | None = None,
    features: Any = None,
    reward_model: CrossFitRewardModel | None = None,
    ci: str = "normal",
    level: float = 0.95,
    n_bootstrap: int = 200,
    seed: int = 0,
    reward_range: tuple[float, float] | None = None,
) -> EvaluationResult:
    """Estimate the value of every target policy with every estimator on ``decisions``.

    Besides each policy's weight diagnostics, two warnings of one line each (in ``warnings`` and
    as Python warnings): the logged propensities checked against how often each arm is logged per
    context (``logging_data.propensities``; ``PropensityWarning``), and the policies whose mean
    importance weight (SNIPS's normaliser) is clearly not 1, so that IPS and SNIPS part
    (``estimators.normaliser_gap``; ``RuntimeWarning``).

    - ``decisions``: rows of a decisions table (query_id, prompt, domain, arm, propensity, reward,
      policy_id); the logged data.
    - ``targets``: policy name -> float64 (n, n_arms) probabilities aligned with ``decisions`` rows.
    - ``outcomes``: the log's outcomes table, if any: gives each policy's true value when it covers
      every decision's prompt (and every arm the policy uses there).
    - ``features``: float (n, d) dense or sparse for the reward model; default ``hashed_features``.
    - ``reward_model``: default ``CrossFitRewardModel(seed=seed)``; fitted once, out-of-fold.
    - ``seed``: seeds the reward model's folds and each bootstrap (one Generator per pair).
    - ``reward_range``: (low, high) bounds every reward obeys; each interval is clipped to it (a
      policy's value lies within them). None: (0, 1) when every logged reward is 0 or 1, else no
      clipping.
    """
    if len(decisions) == 0:
        raise ValueError("the decisions table is empty: nothing to evaluate (simulate a logging policy with `bandit-log simulate`)")
    if not targets:
        raise ValueError("no target policy to evaluate: give at least one run or baseline")
    if not estimators:
        raise ValueError("no estimator given: pick at least one (e.g. ips, dr)")
    arm_names = tuple(arm_names)
    decisions = decisions.reset_index(drop=True)
    actions = decision_actions(decisions, arm_names)
    rewards = decisions["reward"].to_numpy(dtype=np.float64, na_value=np.nan)
    propensities = decisions["propensity"].to_numpy(dtype=np.float64, na_value=np.nan)
    reward_hat = None
    model_desc = None
    if any(e.needs_reward_model for e in estimators):
        model = reward_model or CrossFitRewardModel(seed=seed)
        x = hashed_features(decisions) if features is None else features
        reward_hat = model.fit_predict(x, actions, rewards, len(arm_names))
        model_desc = f"{type(model.regressor).__name__ if model.regressor is not None else 'Ridge'} per arm, {model.n_folds}-fold cross-fitted"
    if reward_range is None and len(rewards) and np.isin(rewards, (0.0, 1.0)).all():
        reward_range = (0.0, 1.0)
    if reward_range is not None:
        lo, hi = (float(v) for v in reward_range)
        if not lo < hi:
            raise ValueError(f"reward_range must be (low, high) with low < high; got {reward_range!r}")
        outside = (rewards < lo) | (rewards > hi)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise ValueError(f"reward_range ({lo:g}, {hi:g}): {int(outside.sum())} logged reward(s) lie outside it "
                             f"(first: row {i}, {rewards[i]!r})")
        reward_range = (lo, hi)
    truth_rewards = None
    if outcomes is not None and not outcomes.empty:
        truth_rewards, covered = outcome_rewards_for(decisions, outcomes, arm_names)
        if not covered.all():
            truth_rewards = None
    caught: list[str] = []
    results = []
    feedback = check_propensities(decisions["arm"], propensities, decision_context(decisions)).summary()
    if feedback:
        caught.append(feedback)
        warnings.warn_explicit(feedback, PropensityWarning, __file__, 0)
    for i, (name, probs) in enumerate(targets.items()):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            batch = LoggedBatch(actions, rewards, propensities, probs, reward_hat)
            diag = diagnose(batch, warn=True, arm_names=arm_names)
            estimates = tuple(
                _estimate_or_nan(est, batch, diag, ci, level, n_bootstrap, np.random.default_rng([seed, i, j]))
                for j, est in enumerate(estimators)
            )
            if reward_range is not None:  # a policy's value lies within the rewards' bounds
                estimates = tuple(replace(e, ci_low=min(max(e.ci_low, reward_range[0]), reward_range[1]),
                                          ci_high=max(min(e.ci_high, reward_range[1]), reward_range[0]))
                                  if np.isfinite(e.ci_low) else e for e in estimates)
        for w in record:
            caught.append(f"{name}: {w.message}")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        for e in estimates:
            if len(decisions) > 1 and np.isfinite(e.ci_low) and e.ci_low == e.ci_high:
                message = (f"{name}: {e.estimator}'s interval [{e.ci_low:.4g}, {e.ci_high:.4g}] has zero width: every "
                           f"row contributes the same value, so it shows no uncertainty (too few distinct rewards or weights)")
                caught.append(message)
                warnings.warn(message, RuntimeWarning, stacklevel=2)
        truth = None
        if truth_rewards is not None:
            try:
                truth = true_policy_value(truth_rewards, batch.target_probs)
            except ValueError:
                truth = None
        results.append(PolicyEvaluation(name, estimates, truth, diag, np.array(batch.weights)))
    gaps = _normaliser_gaps(results)
    if gaps:
        caught.append(gaps)
        warnings.warn_explicit(gaps, RuntimeWarning, __file__, 0)
    if any(e.name == "dm" for e in estimators):
        caught.append(DM_INTERVAL_NOTE)
    ids = tuple(dict.fromkeys(decisions["policy_id"].astype(str))) if "policy_id" in decisions else ()
    return EvaluationResult(tuple(results), arm_names, len(decisions), ids, ci, float(level), model_desc, tuple(caught), reward_range)


def _normaliser_gaps(results: Sequence[PolicyEvaluation]) -> str | None:
    """One line naming every policy whose mean importance weight is clearly not 1, or None."""
    found = [(p.policy, gap) for p in results if (gap := normaliser_gap(p.weights)) is not None]
    if not found:
        return None
    shown = ", ".join(f"{name} {m:.3g} +- {se:.2g}" for name, (m, se) in found[:4])
    more = f" and {len(found) - 4} more" if len(found) > 4 else ""
    factor = max(max(m, 1 / m) for _, (m, _se) in found)
    return (f"IPS and SNIPS disagree by up to a factor {factor:.3g}: the mean importance weight (SNIPS's normaliser, "
            f"1 in expectation) is {shown}{more}; the propensities may be wrong, or the target takes arms the logger "
            f"seldom or never takes in some contexts")


def _estimate_or_nan(est: EstimatorBase, batch: LoggedBatch, diag: Diagnostics, ci: str, level: float, n_bootstrap: int,
                     rng: np.random.Generator) -> Estimate:
    """``est.estimate(batch)``; an estimator undefined on this batch gives NaN and a warning, so one
    policy's undefined estimate does not stop the report on every other."""
    try:
        return est.estimate(batch, ci=ci, level=level, n_bootstrap=n_bootstrap, rng=rng, warn=False)
    except UndefinedEstimateError as exc:
        warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
        nan = float("nan")
        return Estimate(est.name, nan, nan, nan, nan, batch.n, ci, float(level), diag)


# -- the HTML report -----------------------------------------------------------------------------
def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_estimates(result: EvaluationResult) -> str:
    """Base64 PNG: every (policy, estimator) estimate with its interval; true values as diamonds."""
    from matplotlib.figure import Figure

    rows = result.rows()
    fig = Figure(figsize=(7.5, 0.9 + 0.32 * len(rows)))
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    values = np.array([r["estimate"] for r in rows])
    lows = np.array([r["ci_low"] for r in rows])
    highs = np.array([r["ci_high"] for r in rows])
    policies = [r["policy"] for r in rows]
    colours = {p: f"C{i % 10}" for i, p in enumerate(dict.fromkeys(policies))}
    for yi, v, lo, hi, r in zip(y, values, lows, highs, rows):
        err = [[v - lo], [hi - v]] if np.isfinite([lo, hi]).all() else None
        ax.errorbar([v], [yi], xerr=err, fmt="o", color=colours[r["policy"]], capsize=3)
        if r["true_value"] is not None:
            ax.plot([r["true_value"]], [yi], marker="D", color="black", markerfacecolor="none", linestyle="none")
    ax.set_yticks(y, [f"{r['policy']} / {r['estimator']}" for r in rows])
    ax.set_xlabel(f"estimated policy value ({result.level:.0%} {result.ci} interval; open diamond = true value)")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def plot_weights(result: EvaluationResult) -> str:
    """Base64 PNG: the distribution of positive importance weights per policy (log scale)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6))
    ax = fig.add_subplot()
    positive = [p.weights[p.weights > 0] for p in result.policies]
    all_pos = np.concatenate(positive) if positive else np.array([])
    if all_pos.size:
        lo, hi = all_pos.min(), all_pos.max()
        bins = np.geomspace(lo, hi * 1.0001, 40) if hi > lo * 1.0001 else np.array([lo * 0.9, hi * 1.1])
        for i, (p, w) in enumerate(zip(result.policies, positive)):
            zero = 1 - w.size / max(p.weights.size, 1)
            ax.hist(w, bins=bins, histtype="step", linewidth=1.5, color=f"C{i % 10}", label=f"{p.policy} ({zero:.0%} zero)")
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("importance weight target(logged arm) / propensity (positive weights)")
    ax.set_ylabel("rows")
    return _png(fig)


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "nan" if not np.isfinite(x) else f"{x:.4g}"
    return html.escape(str(x))


def render_html(result: EvaluationResult) -> str:
    """The self-contained HTML page of ``result``."""
    head = ["policy", "estimator", "estimate", "ci_low", "ci_high", "std_err", "ess", "max_weight", "true_value", "covers_truth"]
    body = "\n".join("<tr>" + "".join(f"<td>{_fmt(r[h])}</td>" for h in head) + "</tr>" for r in result.rows())
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings) or "<li>none</li>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Off-policy evaluation report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
td:first-child,td:nth-child(2){{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>Off-policy evaluation</h1>
<p>{result.n} logged decisions (logging policies: {html.escape(', '.join(result.logging_policy_ids) or 'unknown')});
arms: {html.escape(', '.join(result.arm_names))}; intervals: {result.level:.0%} {html.escape(result.ci)};
reward model: {html.escape(result.reward_model or 'none')}.</p>
<h2>Estimates</h2>
<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>
{body}</table>
<p><img alt="estimates with intervals per policy" src="data:image/png;base64,{plot_estimates(result)}"></p>
<h2>Importance weights</h2>
<p><img alt="importance weight distribution per policy" src="data:image/png;base64,{plot_weights(result)}"></p>
<h2>Warnings</h2><ul>{warn}</ul>
</body></html>
"""


def write_html_report(result: EvaluationResult, directory: str | os.PathLike) -> Path:
    """Write ``report.html`` (self-contained) and ``report.json`` into ``directory``; returns the HTML path.

    Both files are rendered fully before either is written, and each is replaced atomically.
    ``directory`` is new, empty or a report folder, and never inside a log
    (``logging_data.outputs.check_output``).
    """
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise ValueError(f"report directory {root} exists and is not a directory")
    check_output(root, REPORT, option="--report", if_exists="continue")
    page = render_html(result)
    numbers = json_text(result.to_json(), sort_keys=False)
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / "report.json", numbers)
    write_text_atomic(root / "report.html", page)
    return root / "report.html"
