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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from estimators import (AUTO_RANGE, CrossFitRewardModel, Diagnostics, Estimate, EstimatorBase, LoggedBatch,
                        LowEffectiveSampleSizeWarning, SupportWarning, UndefinedEstimateError, diagnose, normaliser_gap,
                        resolve_reward_range)
from estimators.diagnostics import LOW_ESS_FRACTION
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
    ``source``: what was scored (a policy table's file, a run folder, a baseline), when known.
    """

    policy: str
    estimates: tuple[Estimate, ...]
    true_value: float | None
    diagnostics: Diagnostics
    weights: np.ndarray
    source: str | None = None

    def to_json(self) -> dict:
        q = np.quantile(self.weights, [0.0, 0.5, 0.9, 0.99, 1.0])
        return {
            "policy": self.policy,
            "source": self.source,
            "true_value": self.true_value,
            "diagnostics": self.diagnostics.to_json(),
            "weight_quantiles": dict(zip(["min", "p50", "p90", "p99", "max"], q.tolist())),
            "share_zero_weight": float((self.weights == 0).mean()),
            "estimates": [e.to_json() for e in self.estimates],
        }


@dataclass(frozen=True)
class EvaluationResult:
    """Every (policy, estimator) estimate on one decisions log, and what a reader needs to trust it.

    - ``reward_model``: the DM/DR reward model (None when no estimator needs one), and
      ``features``: what it read (which columns, whether they were standardized);
    - ``reward_range``: the bounds every interval was clipped to (None: not clipped), and
      ``clip_rule``: why (``auto: ...``, ``given`` or never); each estimate keeps its unclipped ends;
    - ``warnings``: one line per problem found; ``notes``: facts that are not problems (what an
      interval does not cover, intervals of zero width).
    """

    policies: tuple[PolicyEvaluation, ...]
    arm_names: tuple[str, ...]
    n: int
    logging_policy_ids: tuple[str, ...]
    ci: str
    level: float
    reward_model: str | None
    warnings: tuple[str, ...]
    reward_range: tuple[float, float] | None = None  # intervals were clipped to it
    clip_rule: str | None = None
    features: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def has_truth(self) -> bool:
        """Whether any policy has a true value (the log's outcomes cover the decisions)."""
        return any(p.true_value is not None for p in self.policies)

    @property
    def n_clipped(self) -> int:
        """How many intervals clipping to ``reward_range`` moved."""
        return sum(e.clipped for p in self.policies for e in p.estimates)

    def clipping(self) -> str:
        """One sentence: whether and how the intervals were clipped."""
        if self.reward_range is None:
            return f"intervals not clipped ({self.clip_rule or 'no reward range'})"
        lo, hi = self.reward_range
        moved = self.n_clipped
        return (f"intervals clipped to the reward range [{lo:g}, {hi:g}] ({self.clip_rule}); clipping moved {moved} of "
                f"{sum(len(p.estimates) for p in self.policies)} interval(s)"
                + ("; their unclipped ends are in ci_low_unclipped / ci_high_unclipped" if moved else ""))

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
                        "clipped": e.clipped,
                        "ci_low_unclipped": e.ci_low_unclipped if e.ci_low_unclipped is not None else e.ci_low,
                        "ci_high_unclipped": e.ci_high_unclipped if e.ci_high_unclipped is not None else e.ci_high,
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
            "features": self.features,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "reward_range": list(self.reward_range) if self.reward_range is not None else None,
            "clip_rule": self.clip_rule,
            "n_clipped": self.n_clipped,
            "sources": {p.policy: p.source for p in self.policies},
            "rows": self.rows(),
            "policies": [p.to_json() for p in self.policies],
        }


# -- evaluation ----------------------------------------------------------------------------------
PROMPT_FEATURES = f"hashed word 1-2-grams of the prompt text and its domain ({HASH_FEATURES} hashed columns)"


def context_columns(decisions: pd.DataFrame, columns: Sequence[str] | None = None) -> list[str]:
    """The context columns the reward model reads: ``columns`` (each an existing numeric column),
    or else every numeric ``x_*`` column of ``decisions`` but ``x_position``."""
    if columns is None:
        return [c for c in decisions.columns if str(c).startswith("x_") and c != "x_position" and decisions[c].dtype.kind in "fiu"]
    missing = [c for c in columns if c not in decisions.columns]
    if missing:
        raise ValueError(f"context column {missing[0]!r} is not in the decisions table (its x_* columns: "
                         f"{', '.join(c for c in decisions.columns if str(c).startswith('x_')) or 'none'})")
    text = [c for c in columns if decisions[c].dtype.kind not in "fiu"]
    if text:
        raise ValueError(f"context column {text[0]!r} is not numeric ({decisions[text[0]].dtype}); the reward model reads numbers")
    return list(columns)


def context_features(decisions: pd.DataFrame, columns: Sequence[str] | None = None) -> tuple[np.ndarray | None, list[str]]:
    """float64 (n, d): the reward model's features from the context columns (``context_columns``),
    each standardized to mean 0 and standard deviation 1 over these rows (a constant column is only
    centred); (None, []) when there are none. ``context_description`` says so in words."""
    cols = context_columns(decisions, columns)
    if not cols:
        return None, []
    x = decisions[cols].to_numpy(dtype=np.float64)
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0), cols


def context_description(columns: Sequence[str], n: int, shown: int | None = None) -> str:
    """What ``context_features`` did, in one sentence: every column for the report, or the first
    ``shown`` of them and a count for a line on stderr."""
    names = ", ".join(columns) if shown is None or len(columns) <= shown else _names(list(columns), shown)
    return (f"{len(columns)} context column(s) {names}, each standardized (mean 0, standard deviation 1 over these {n} "
            f"decisions) before fitting")


def evaluate_policies(
    decisions: pd.DataFrame,
    arm_names: Sequence[str],
    targets: Mapping[str, np.ndarray],
    estimators: Sequence[EstimatorBase],
    *,
    outcomes: pd.DataFrame | None = None,
    features: Any = None,
    features_description: str | None = None,
    reward_model: CrossFitRewardModel | None = None,
    ci: str = "normal",
    level: float = 0.95,
    n_bootstrap: int = 200,
    seed: int = 0,
    reward_range: tuple[float, float] | str | None = AUTO_RANGE,
    sources: Mapping[str, str] | None = None,
) -> EvaluationResult:
    """Estimate the value of every target policy with every estimator on ``decisions``.

    Problems found are one line each (in ``warnings``, and as Python warnings): the logged
    propensities checked against how often each arm is logged per context
    (``logging_data.propensities``; ``PropensityWarning``); the policies whose importance weights
    have a low effective sample size (``LowEffectiveSampleSizeWarning``) or that take arms the
    logger never took (``SupportWarning``), one line for all of them; the policies whose mean
    importance weight (SNIPS's normaliser) is clearly not 1, so that IPS and SNIPS part
    (``estimators.normaliser_gap``; ``RuntimeWarning``); a prompt-text reward model on empty
    prompts. Facts that are not problems (DM's interval, intervals of zero width) are ``notes``.

    - ``decisions``: rows of a decisions table (query_id, prompt, domain, arm, propensity, reward,
      policy_id); the logged data.
    - ``targets``: policy name -> float64 (n, n_arms) probabilities aligned with ``decisions`` rows.
    - ``outcomes``: the log's outcomes table, if any: gives each policy's true value when it covers
      every decision's prompt (and every arm the policy uses there).
    - ``features``: float (n, d) dense or sparse for the reward model, and
      ``features_description``, what they are (for the report); default ``hashed_features``.
    - ``reward_model``: default ``CrossFitRewardModel(seed=seed)``; fitted once, out-of-fold.
    - ``seed``: seeds the reward model's folds and each bootstrap (one Generator per pair).
    - ``reward_range``: the bounds each interval is clipped to, as ``Estimator.estimate`` takes
      it (``estimators.intervals.resolve_reward_range``): ``"auto"`` (default), (0, 1) when every
      logged reward is 0 or 1, else no clipping; ``(low, high)``: bounds every reward obeys;
      ``None``: never clip.
    - ``sources``: policy name -> what was scored (a file, a run folder), shown in the report.
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
    bounds = resolve_reward_range(rewards, reward_range)
    clip_rule = _clip_rule(reward_range, bounds)
    caught: list[str] = []

    def warn(message: str, category: type[Warning]) -> None:
        caught.append(message)
        warnings.warn(message, category, stacklevel=3)

    reward_hat = model_desc = feature_desc = None
    if any(e.needs_reward_model for e in estimators):
        model = reward_model or CrossFitRewardModel(seed=seed)
        if features is None:
            x, feature_desc = hashed_features(decisions), PROMPT_FEATURES
            empty = _empty_prompts_line(decisions)
            if empty:
                warn(empty, RuntimeWarning)
        else:
            x = features
            feature_desc = features_description or f"the caller's features ({np.shape(x)[1]} columns)"
        reward_hat = model.fit_predict(x, actions, rewards, len(arm_names))
        model_desc = f"{type(model.regressor).__name__ if model.regressor is not None else 'Ridge'} per arm, {model.n_folds}-fold cross-fitted"
    truth_rewards = None
    if outcomes is not None and not outcomes.empty:
        truth_rewards, covered = outcome_rewards_for(decisions, outcomes, arm_names)
        if not covered.all():
            truth_rewards = None
    feedback = check_propensities(decisions["arm"], propensities, decision_context(decisions)).summary()
    if feedback:
        warn(feedback, PropensityWarning)
    results = []
    for i, (name, probs) in enumerate(targets.items()):
        batch = LoggedBatch(actions, rewards, propensities, probs, reward_hat)
        diag = diagnose(batch, warn=False)
        estimates = []
        for j, est in enumerate(estimators):
            estimate, undefined = _estimate_or_nan(est, batch, diag, ci, level, n_bootstrap, np.random.default_rng([seed, i, j]), bounds)
            estimates.append(estimate)
            if undefined:
                warn(f"{name}: {undefined}", RuntimeWarning)
        truth = None
        if truth_rewards is not None:
            try:
                truth = true_policy_value(truth_rewards, batch.target_probs)
            except ValueError:
                truth = None
        results.append(PolicyEvaluation(name, tuple(estimates), truth, diag, np.array(batch.weights),
                                        (sources or {}).get(name)))
    for message, category in _diagnostic_lines(results, arm_names):
        warn(message, category)
    gaps = _normaliser_gaps(results)
    if gaps:
        warn(gaps, RuntimeWarning)
    notes = [DM_INTERVAL_NOTE] if any(e.name == "dm" for e in estimators) else []
    notes += _zero_width_notes(results, len(decisions))
    ids = tuple(dict.fromkeys(decisions["policy_id"].astype(str))) if "policy_id" in decisions else ()
    return EvaluationResult(tuple(results), arm_names, len(decisions), ids, ci, float(level), model_desc, tuple(caught), bounds,
                            clip_rule, feature_desc, tuple(notes))


def _clip_rule(option: Any, bounds: tuple[float, float] | None) -> str:
    """Why the intervals were (not) clipped, from the ``reward_range`` option and its resolved bounds."""
    if isinstance(option, str):
        return "auto: every logged reward is 0 or 1" if bounds is not None else "auto: the logged rewards are not all 0 or 1"
    return "given" if bounds is not None else "reward range none: never clipped"


def _empty_prompts_line(decisions: pd.DataFrame) -> str | None:
    """A warning when the prompt-text reward model would read nothing: every prompt empty."""
    if "prompt" in decisions and decisions["prompt"].astype(str).fillna("").str.strip().ne("").any():
        return None
    context = context_columns(decisions)
    hint = (f"this log has context columns ({', '.join(context[:4])}{', ...' if len(context) > 4 else ''}): "
            f"bandit-log evaluate --features context" if context else "import the prompts (bandit-log import --prompt-col) "
            "or context columns (--context)")
    return (f"the reward model of DM and the DR family reads the prompt text, and every prompt is empty: it sees only the "
            f"domain, so it predicts one mean per arm{' and domain' if 'domain' in decisions and decisions['domain'].notna().any() else ''}; {hint}")


def _names(names: Sequence[str], shown: int = 6) -> str:
    """``a, b, c`` or ``a, b, c and 4 more``."""
    head = ", ".join(names[:shown])
    return head + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _diagnostic_lines(results: Sequence[PolicyEvaluation], arm_names: Sequence[str]) -> list[tuple[str, type[Warning]]]:
    """One line for every policy that takes arms the logger never took, one for every policy whose
    effective sample size is low (``estimators.diagnostics``' thresholds), instead of one each."""
    lines: list[tuple[str, type[Warning]]] = []
    if not results:
        return lines
    n = results[0].diagnostics.n
    unsupported = [p for p in results if p.diagnostics.unsupported_arms]
    if unsupported:
        parts = [f"{p.policy} puts {p.diagnostics.unsupported_mass:.1%} of its probability on "
                 f"{', '.join(arm_names[a] for a in p.diagnostics.unsupported_arms)}" for p in unsupported]
        lines.append((f"arms the logging policy never chose in these {n} rows: {'; '.join(parts[:6])}"
                      f"{f'; and {len(parts) - 6} more policies' if len(parts) > 6 else ''}; weighting estimators cannot "
                      f"see those arms and model-based ones extrapolate", SupportWarning))
    low = [p for p in results if p.diagnostics.effective_sample_size < LOW_ESS_FRACTION * n]
    if len(low) == 1:
        d = low[0].diagnostics
        lines.append((f"{low[0].policy}: effective sample size is {d.effective_sample_size:.1f} of {n} rows (max weight "
                      f"{d.max_weight:.3g}); the estimate rests on a few rows", LowEffectiveSampleSizeWarning))
    elif low:
        top = max(p.diagnostics.max_weight for p in low)
        shown = [f"{p.policy} {p.diagnostics.effective_sample_size:.1f}" for p in low]
        lines.append((f"{len(low)} of {len(results)} policies have an effective sample size below {LOW_ESS_FRACTION:.0%} of "
                      f"the {n} rows, so their estimates rest on a few rows (max weight {top:.3g}): {_names(shown)}",
                      LowEffectiveSampleSizeWarning))
    return lines


def _zero_width_notes(results: Sequence[PolicyEvaluation], n: int) -> list[str]:
    """One note for every interval of zero width (every row contributes the same value: e.g. an arm
    whose reward is the same on every row, such as plain decoding's time saved, 0), or none."""
    if n < 2:
        return []
    found = []
    for p in results:
        flat = [e for e in p.estimates if np.isfinite(e.ci_low) and e.ci_low == e.ci_high and
                (e.ci_low_unclipped is None or e.ci_low_unclipped == e.ci_high_unclipped)]
        if flat:
            found.append(f"{p.policy} ({', '.join(e.estimator for e in flat)}: {flat[0].ci_low:.4g})")
    if not found:
        return []
    return [f"zero-width intervals, where every row contributes the same value (a policy whose arms earn the same "
            f"reward on every logged row), so the interval shows no uncertainty: {_names(found)}"]


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
                     rng: np.random.Generator, bounds: tuple[float, float] | None) -> tuple[Estimate, str | None]:
    """(``est.estimate(batch)``, None); an estimator undefined on this batch gives NaN and the reason,
    so one policy's undefined estimate does not stop the report on every other."""
    try:
        return est.estimate(batch, ci=ci, level=level, n_bootstrap=n_bootstrap, rng=rng, warn=False, reward_range=bounds), None
    except UndefinedEstimateError as exc:
        nan = float("nan")
        return Estimate(est.name, nan, nan, nan, nan, batch.n, ci, float(level), diag), str(exc)


# -- the HTML report -----------------------------------------------------------------------------
def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_estimates(result: EvaluationResult) -> str:
    """Base64 PNG: every (policy, estimator) estimate with its interval; true values as diamonds (the
    legend names them only where there are some)."""
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
    ax.set_xlabel(estimates_axis_label(result))
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def estimates_axis_label(result: EvaluationResult) -> str:
    """The estimates plot's axis label, its legend: the true value's marker only where one is drawn."""
    legend = "; open diamond = true value" if result.has_truth else ""
    clipped = f"; clipped to [{result.reward_range[0]:g}, {result.reward_range[1]:g}]" if result.n_clipped else ""
    return f"estimated policy value ({result.level:.0%} {result.ci} interval{clipped}{legend})"


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


def _interval_cell(row: dict) -> str:
    """The unclipped interval of a clipped row, ``-`` otherwise."""
    if not row["clipped"]:
        return "-"
    return f"[{_fmt(row['ci_low_unclipped'])}, {_fmt(row['ci_high_unclipped'])}]"


def render_html(result: EvaluationResult) -> str:
    """The self-contained HTML page of ``result``: what was scored, how (reward model features,
    clipping), the estimates, the plots, warnings and notes. Columns of the true value appear only
    when the log has one."""
    head = ["policy", "estimator", "estimate", "ci_low", "ci_high"]
    head += ["unclipped interval"] if result.n_clipped else []
    head += ["std_err", "ess", "max_weight"] + (["true_value", "covers_truth"] if result.has_truth else [])
    cell = {"unclipped interval": _interval_cell}
    body = "\n".join("<tr>" + "".join(f"<td>{cell[h](r) if h in cell else _fmt(r[h])}</td>" for h in head) + "</tr>"
                     for r in result.rows())
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings) or "<li>none</li>"
    notes = "".join(f"<li>{html.escape(w)}</li>" for w in result.notes) or "<li>none</li>"
    sources = "".join(f"<li>{html.escape(p.policy)}: {html.escape(p.source or 'given by the caller')}</li>" for p in result.policies)
    model = (f"{html.escape(result.reward_model)}, on {html.escape(result.features or 'unstated features')}"
             if result.reward_model else "none (no estimator needs one)")
    truth = ("true values from the log's outcomes, beside each estimate" if result.has_truth
             else "no true values (the log has no outcomes for these decisions)")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Off-policy evaluation report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
td:first-child,td:nth-child(2){{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>Off-policy evaluation</h1>
<p>{result.n} logged decisions (logging policies: {html.escape(', '.join(result.logging_policy_ids) or 'unknown')});
arms: {html.escape(', '.join(result.arm_names))}; {truth}.</p>
<ul>
<li>intervals: {result.level:.0%} {html.escape(result.ci)}; {html.escape(result.clipping())}.</li>
<li>reward model (DM and the DR family): {model}.</li>
</ul>
<h2>Policies scored</h2>
<ul>{sources}</ul>
<h2>Estimates</h2>
<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>
{body}</table>
<p><img alt="estimates with intervals per policy" src="data:image/png;base64,{plot_estimates(result)}"></p>
<h2>Importance weights</h2>
<p><img alt="importance weight distribution per policy" src="data:image/png;base64,{plot_weights(result)}"></p>
<h2>Warnings</h2><ul>{warn}</ul>
<h2>Notes</h2><ul>{notes}</ul>
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
