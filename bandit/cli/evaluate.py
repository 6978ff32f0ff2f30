"""``bandit-log evaluate``: off-policy estimates of trained runs and baselines on a decisions log.

Thin over ``bandit.report``: builds each target policy's probability matrix on the logged rows
(a trained run through ``bandit.runs.load_run``, or a baseline), runs the estimators, prints a
table (or one JSON document), and optionally writes the HTML report.
"""

from __future__ import annotations

from typing import Any

import click

from bandit.cli._common import emit_json, report_options, say

def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _table(rows: list[dict]) -> list[str]:
    header = ["policy", "estimator", "estimate", "ci", "ess", "true"]
    cells = [header] + [
        [r["policy"], r["estimator"], _fmt(r["estimate"]), f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", f"{r['ess']:.1f}", _fmt(r["true_value"])]
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return ["  ".join(c[0].ljust(widths[0]) if i == 0 else c[i].ljust(widths[i]) if i == 1 else c[i].rjust(widths[i]) for i in range(len(header))).rstrip() for c in cells]


def _non_empty_ids(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not value.strip():
            raise click.BadParameter(f"must be a non-empty policy_id; got {value!r}")
    return values


def _run_probs(path: str, decisions: Any, metadata: Any) -> tuple[str, Any]:
    import numpy as np

    try:
        from bandit.runs import load_run
    except ImportError as exc:
        raise ValueError(f"--run {path}: trained runs cannot be loaded here (bandit.runs is unavailable: {exc})") from None
    run = load_run(path)
    for message in run.check_log(metadata, "this log"):  # refuses other arms, as compare and decode do
        say(f"warning: {message}")
    frame = decisions[[c for c in ("query_id", "prompt", "domain") if c in decisions.columns]]
    probs = np.asarray(run.probabilities(frame), dtype=np.float64)
    return str(run.name), probs


@click.command()
@click.argument("log", type=click.Path(exists=True, file_okay=False, dir_okay=True, path_type=str))
@click.option("--run", "runs", multiple=True, type=click.Path(exists=True, path_type=str), help="A trained run folder (repeatable).")
@click.option("--policy-table", "tables", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="A target policy as a table of action probabilities: .npy (n, arms), or .csv/.parquet with one column "
                   "per arm and a query_id column, or context key columns (one row per context, e.g. segment), or one row "
                   "per decision in order (repeatable; OBP's action_dist).")
@click.option("--features", type=click.Choice(["prompt", "context"]), default=None,
              help="What the DM/DR reward model reads: hashed prompt text, or the log's numeric context columns, each "
                   "standardized (default: the context columns an import recorded, bandit-log import --context; else the "
                   "prompt). Said on stderr and in the report.")
@click.option("--reward-range", default="auto", show_default=True, metavar="auto|none|LOW,HIGH",
              help="Bounds every reward obeys; each interval is clipped to them, as Python's estimate(reward_range=...) "
                   "does with the same default: auto clips to 0,1 when every logged reward is 0 or 1; none never clips. "
                   "The report says whether clipping moved an interval, with its unclipped ends.")
@click.option("--baseline", "baselines", multiple=True,
              help="A baseline policy: uniform, fixed:ARM or oracle (repeatable). Default with no --run: uniform, fixed:ARM for every arm, and oracle when the log has outcomes.")
@click.option("--estimator", "estimator_specs", multiple=True,
              help="Estimator name, optionally with settings: dm, ips, ips:clip=20, snips, dr, sndr, switch-dr:tau=50, dros:lam=100 (repeatable; default ips, snips, dr).")
@click.option("--ci", type=click.Choice(["normal", "bootstrap"]), default="normal", show_default=True, help="Interval method.")
@click.option("--level", type=float, default=0.95, show_default=True, help="Interval coverage level.")
@click.option("--n-bootstrap", type=int, default=200, show_default=True, help="Bootstrap resamples (with --ci bootstrap).")
@click.option("--folds", type=int, default=5, show_default=True, help="Cross-fitting folds of the reward model (DM and DR family).")
@click.option("--policy-id", "policy_ids", multiple=True, callback=_non_empty_ids, help="Only decisions logged by this policy_id (repeatable; default: all rows).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the reward model's folds and the bootstrap.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout.")
@report_options("Also write report.html (self-contained, with plots) and report.json into this new folder (written whole, "
                "then renamed into place).")
def evaluate(log: str, runs: tuple[str, ...], tables: tuple[str, ...], features: str | None, reward_range: str, baselines: tuple[str, ...],
             estimator_specs: tuple[str, ...], ci: str, level: float, n_bootstrap: int, folds: int, policy_ids: tuple[str, ...],
             seed: int, as_json: bool, report_dir: str | None, overwrite: bool) -> None:
    """Estimate the value of trained runs and baselines from LOG's logged decisions.

    Each target policy is evaluated with each estimator on the decisions table; the reward
    model of DM and the DR family is a per-arm ridge regression, cross-fitted, on the context
    columns an import recorded (each standardized) or else on hashed word n-grams of the prompt
    (--features picks). Where LOG also has the outcomes of the same prompts, the true value is
    printed beside the estimate. Intervals are clipped to --reward-range.

    The logged propensities are checked against how often each arm is logged per context, and
    policies whose mean importance weight (SNIPS's normaliser) is clearly not 1 are named: one
    warning line each on stderr, and in the JSON and the report.

    \b
    Example:
      bandit-log evaluate LOG --baseline uniform --baseline oracle --estimator ips --estimator dr
      bandit-log evaluate LOG --run runs/reinforce --ci bootstrap --json
      bandit-log evaluate LOG --estimator ips:clip=20 --estimator sndr --report out/report
      bandit-log evaluate LOG --estimator ips --report out/report --overwrite
    """
    from estimators import CrossFitRewardModel, parse_estimator
    from logging_data import open_log

    from bandit.pipeline import DEFAULT_ESTIMATORS, by_policy_ids
    from bandit.report import baseline_probs, evaluate_policies

    from logging_data import require_valid_log
    from logging_data.outputs import REPORT, check_output

    bounds = _reward_range(reward_range)
    if report_dir:  # before any work: a new or empty folder, or (--overwrite) a report; apart from the inputs, outside every log
        check_output(report_dir, REPORT, option="--report", if_exists="overwrite", overwrite=overwrite,
                     inputs=[("LOG", log), *(("--run", r) for r in runs), *(("--policy-table", t) for t in tables)])
    require_valid_log(log)
    opened = open_log(log)
    arms = opened.metadata.arm_names
    if not opened.has("decisions"):
        raise ValueError(f"{log}: the log has no decisions table (simulate one with `bandit-log simulate {log}`)")
    estimators = [parse_estimator(s) for s in (estimator_specs or DEFAULT_ESTIMATORS)]
    decisions = by_policy_ids(opened.read("decisions"), policy_ids)
    outcomes = opened.read("outcomes") if opened.has("outcomes") else None
    specs = list(baselines)
    if not specs and not runs and not tables:
        specs = ["uniform"] + [f"fixed:{a}" for a in arms] + (["oracle"] if outcomes is not None else [])
    targets, sources = {}, {}
    for spec in specs:
        targets[spec] = baseline_probs(spec, decisions, arms, outcomes)
        sources[spec] = f"baseline {spec}"
    for path in runs:
        name, probs = _run_probs(path, decisions, opened.metadata)
        if name in targets:
            name = f"{name} ({path})"
        targets[name], sources[name] = probs, f"run folder {path}"
    for path in tables:
        from bandit.policy_table import load_policy_table

        name, probs = load_policy_table(path, decisions, arms)
        name = name if name not in targets else f"{name} ({path})"
        targets[name], sources[name] = probs, f"policy table {path}"
    say(f"evaluating {len(targets)} policies x {len(estimators)} estimators on {len(decisions)} decisions")
    x, described = _reward_features(features, decisions, opened.metadata, log, estimators)
    result = evaluate_policies(
        decisions, arms, targets, estimators, outcomes=outcomes, features=x, features_description=described, reward_range=bounds,
        reward_model=CrossFitRewardModel(n_folds=folds, seed=seed), ci=ci, level=level, n_bootstrap=n_bootstrap, seed=seed,
        sources=sources,
    )
    if report_dir:
        say(f"wrote {write_report(result, report_dir, overwrite)}")
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo("\n".join(_table(result.rows())))
    if result.n_clipped:
        say(f"note: {result.clipping()}")
    for note in result.notes:
        say(f"note: {note}")


def _reward_range(option: str) -> tuple[float, float] | str | None:
    """``--reward-range``: 'auto', None (none) or (low, high)."""
    text = option.strip().lower()
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        lo, hi = (float(v) for v in option.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LOW,HIGH (two numbers); got {option!r} (or auto, or none)", param_hint="--reward-range") from None
    return (lo, hi)


def _reward_features(features: str | None, decisions: Any, metadata: Any, log: str, estimators: list) -> tuple[Any, str | None]:
    """(features of the DM/DR reward model, what they are) for ``--features``; (None, None) means
    the prompt text (``bandit.report.hashed_features``). The choice is said on stderr when an
    estimator needs the model."""
    from bandit.report import PROMPT_FEATURES, context_description, context_features
    from logging_data.importer import imported_context

    recorded = [c for c in imported_context(metadata) if c in decisions.columns]
    if features is None:
        features = "context" if recorded else "prompt"
    needed = any(e.needs_reward_model for e in estimators)
    if features == "prompt":
        if needed:
            say(f"reward model features: {PROMPT_FEATURES}")
        return None, None
    x, xcols = context_features(decisions, recorded or None)
    if not xcols:
        raise ValueError(f"{log}: --features context needs numeric x_* columns in the decisions table "
                         f"(bandit-log import --context COL); it has none")
    described = context_description(xcols, len(decisions))
    if needed:
        say(f"reward model features: {context_description(xcols, len(decisions), shown=4)}")
    return x, described


def write_report(result: Any, report_dir: str, overwrite: bool) -> str:
    """``bandit.report.write_html_report`` into a hidden folder beside ``report_dir``, renamed into
    place once both files are written: a failure leaves the old report, or nothing. ``report_dir``
    was checked (``check_output``) before any work; returns the HTML file's path."""
    from bandit.report import write_html_report
    from logging_data.outputs import publish, staged

    with staged(report_dir) as stage:
        name = write_html_report(result, stage).name
        publish(stage, report_dir, replace=overwrite)
    return f"{report_dir}/{name}"
