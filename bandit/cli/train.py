"""``bandit-log train`` and ``bandit-log compare``: thin over ``bandit.runs`` and ``bandit.report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bandit.cli._common import emit_json, say, stderr_is_tty

DEFAULT_ESTIMATORS = ("ips", "snips", "dr")


def _read_config_file(path: str) -> tuple[str | None, dict, dict]:
    """(policy name or None, settings, featurizer settings) from a JSON file.

    Accepts a run's ``config.json`` (``{"policy", "settings", "featurizer": {"settings"}}``) or a
    flat object of settings.
    """
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config {path}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"--config {path}: expected a JSON object of settings; got {type(record).__name__}")
    if "settings" in record:
        featurizer = record.get("featurizer") or {}
        return record.get("policy"), dict(record["settings"]), dict(featurizer.get("settings", {}))
    return None, record, {}


@click.command()
@click.argument("log", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--policy", "policy_name", default=None, help="Registered policy name (see the list below); may come from --config.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="JSON file of settings (flat, or a run's config.json to retrain it).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override one setting (repeatable); the value is read as JSON when it parses (3, 0.5, true, [8, 8]), else as text.")
@click.option("--featurizer-set", "featurizer_assignments", multiple=True, metavar="KEY=VALUE",
              help="A setting of the featurizer (repeatable), e.g. n_components=32 for tfidf-svd.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=str), help="The run folder to write.")
@click.option("--feedback", type=click.Choice(["full", "bandit"]), default="full", show_default=True,
              help="full: the outcomes table (every arm per prompt); bandit: the logged decisions.")
@click.option("--split", type=click.Choice(["train", "validation", "test", "all"]), default="train", show_default=True,
              help="Which rows to train on.")
@click.option("--policy-id", default=None, help="With --feedback bandit: the logging policy whose decisions to use.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder (only a run folder that holds nothing else, and only once the new one is complete).")
@click.option("--no-progress", is_flag=True, help="No progress bars on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as one JSON document on stdout.")
def train(log: str, policy_name: str | None, config_file: str | None, assignments: tuple[str, ...],
          featurizer_assignments: tuple[str, ...], out_dir: str, feedback: str, split: str, policy_id: str | None,
          overwrite: bool, no_progress: bool, as_json: bool) -> None:
    """Train a policy on LOG and write the run folder --out.

    The run folder holds config.json, featurizer/, model/, metrics.json and fingerprint.json; it
    appears only when complete. An interrupted training resumes from its checkpoints when the
    same command runs again.

    \b
    Policies: uniform, fixed (--set arm=NAME), epsilon-greedy, oracle, regression, classifier,
    taskspec, reinforce, vw, cql, bcq. Each setting is a field of the policy's config.
    \b
    Examples:
      bandit-log train LOG --policy regression --out runs/ridge
      bandit-log train LOG --policy classifier --set featurizer=tfidf-svd --featurizer-set n_components=32 --out runs/clf
      bandit-log train LOG --policy regression --feedback bandit --policy-id sim-uniform-seed0 --out runs/ridge-bandit
      bandit-log train LOG --config runs/ridge/config.json --set alpha=3 --out runs/ridge3
    """
    from bandit.configs import make_config, parse_assignments
    from bandit.runs import train_run

    file_policy, settings, featurizer_settings = _read_config_file(config_file) if config_file else (None, {}, {})
    if policy_name and file_policy and policy_name != file_policy:
        raise ValueError(f"--policy {policy_name} differs from the policy in --config {config_file} ({file_policy})")
    name = policy_name or file_policy
    if not name:
        raise click.UsageError("name a policy with --policy NAME (or a --config file that has one)")
    config = make_config(name, settings, parse_assignments(assignments))
    raw_featurizer = parse_assignments(featurizer_assignments, "--featurizer-set")
    for key, value in raw_featurizer.items():
        try:
            featurizer_settings[key] = json.loads(value)
        except json.JSONDecodeError:
            featurizer_settings[key] = value
    say(f"training {name} on {log} ({feedback} feedback, split {split}) -> {out_dir}")
    run = train_run(log, config, out_dir, feedback=feedback, split=split, policy_id=policy_id,
                    featurizer_settings=featurizer_settings, overwrite=overwrite, progress=not no_progress and stderr_is_tty(),
                    inputs=[("--config", config_file)])
    summary = {"run": str(run.path), "policy": name, "config": run.record, "metrics": run.metrics,
               "fingerprint": {k: run.fingerprint[k] for k in ("log_path", "table", "rows", "n_prompts", "split", "sha256")}}
    if as_json:
        emit_json(summary)
        return
    m = run.metrics
    click.echo(f"wrote {run.path}: {name} on {m['n_train_prompts']} prompts in {m['train_seconds']:.2f} s; "
               f"featurizer {m['featurizer']['name']} ({m['featurizer']['dim']} dims, "
               f"{1000 * m['featurizer']['seconds_per_prompt']:.3f} ms/prompt)")
    values = m.get("train_values", {})
    if "policy" in values:
        click.echo(f"train-set value: policy {values['policy']:.4f}; oracle {values['oracle']:.4f}; "
                   f"best arm {values['best_arm']} {values['best_arm_value']:.4f}; uniform {values['uniform']:.4f}")


# -- compare ----------------------------------------------------------------------------------
def _held_out(frame: Any, table: str) -> tuple[Any, str | None]:
    """The test rows of ``frame`` when it has any, else every row (split None)."""
    if "split" in frame.columns and (frame["split"].astype(object) == "test").any():
        return frame[(frame["split"].astype(object) == "test").to_numpy()].reset_index(drop=True), "test"
    say(f"note: the {table} table has no test split; comparing on every row, including rows the runs may have trained on")
    return frame.reset_index(drop=True), None


def _true_values(runs: list[Any], names: list[str], outcomes: Any, arm_names: tuple[str, ...]) -> dict:
    """Each run's exact value on the held-out prompts of the outcomes table, with the references."""
    import numpy as np

    from logging_data.simulate import reward_matrix

    held, split = _held_out(outcomes, "outcomes")
    qids, rewards = reward_matrix(held, arm_names)
    complete = np.isfinite(rewards).all(axis=1)
    prompts = held.drop_duplicates("query_id").set_index(held.drop_duplicates("query_id")["query_id"].astype(str)).loc[qids]
    frame = prompts.reset_index(drop=True)[["query_id", "prompt"]][complete]
    r = rewards[complete]
    out: dict[str, Any] = {"split": split, "n_prompts": int(complete.sum()), "n_incomplete_skipped": int((~complete).sum())}
    if not complete.any():
        out["note"] = "no held-out prompt has every arm's outcome"
        return out
    per_arm = r.mean(axis=0)
    out["references"] = {"oracle": float(r.max(axis=1).mean()), "uniform": float(r.mean()),
                         "best_arm": arm_names[int(per_arm.argmax())], "best_arm_value": float(per_arm.max()),
                         "arms": dict(zip(arm_names, per_arm.tolist()))}
    out["runs"] = {}
    for name, run in zip(names, runs):
        try:
            probs = run.probabilities(frame)
        except ValueError as exc:  # e.g. an oracle that never saw these prompts
            out["runs"][name] = {"value": None, "note": str(exc)}
            continue
        value = float((probs * r).sum(axis=1).mean())
        oracle = out["references"]["oracle"]
        out["runs"][name] = {"value": value, "share_of_oracle": value / oracle if oracle else None}
    return out


@click.command()
@click.argument("log", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--estimator", "estimator_specs", multiple=True,
              help="Estimator, optionally with settings: dm, ips, ips:clip=20, snips, dr, sndr, switch-dr:tau=50 (repeatable; default ips, snips, dr).")
@click.option("--policy-id", "policy_ids", multiple=True, help="Only decisions logged by this policy_id (repeatable; default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the reward model's folds.")
@click.option("--select-on", "select_split", type=click.Choice(["validation", "train", "test", "all"]), default="validation",
              show_default=True, help="Split on which the selection rule chooses among the runs, every fixed arm and uniform.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as one JSON document on stdout.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Also write report.html and report.json (the off-policy report) into this new folder (written whole, "
                   "then renamed into place; only with a decisions table).")
@click.option("--overwrite", is_flag=True,
              help="Replace the report folder at --report (only a report folder holding nothing else, once the new one is complete).")
def compare(log: str, runs: tuple[str, ...], estimator_specs: tuple[str, ...], policy_ids: tuple[str, ...], seed: int,
            select_split: str, as_json: bool, report_dir: str | None, overwrite: bool) -> None:
    """Select among trained RUNS, every fixed arm and uniform; compare them on held-out prompts.

    Selection (bandit.selection), on the --select-on split (validation by default): with the
    outcomes table, each candidate's exact value; with decisions only, its doubly robust
    estimate. A run is selected only when its paired interval against the best fixed arm is
    above zero (Bonferroni over the runs), else that arm; the reason is printed.

    Off-policy estimates come from the logged decisions (bandit.report); where LOG has the
    outcomes table, each run's true value on the held-out prompts (the test split when present)
    is reported beside them, with the oracle, the best single arm and uniform for reference.

    \b
    Examples:
      bandit-log compare LOG runs/ridge runs/clf runs/oracle
      bandit-log compare LOG runs/* --estimator ips --estimator dr --report out/compare --json
    """
    from logging_data import open_log

    from bandit.runs import load_run

    from logging_data import require_valid_log
    from logging_data.outputs import REPORT, check_output

    if report_dir:  # before any work: a new or empty folder, or (--overwrite) a report; apart from the inputs, outside every log
        check_output(report_dir, REPORT, option="--report", if_exists="overwrite", overwrite=overwrite,
                     inputs=[("LOG", log), *(("RUN", r) for r in runs)])
    require_valid_log(log)
    opened = open_log(log)
    arms = opened.metadata.arm_names
    loaded = [load_run(p) for p in runs]
    names: list[str] = []
    warnings: list[str] = []
    for path, run in zip(runs, loaded):
        warnings += run.check_log(opened.metadata, f"log {log}")
        names.append(run.name if run.name not in names else f"{run.name} ({path})")
    has_outcomes, has_decisions = opened.has("outcomes"), opened.has("decisions")
    if not has_outcomes and not has_decisions:
        raise ValueError(f"{log}: the log has neither outcomes nor decisions; nothing to compare on")
    result: dict[str, Any] = {"log": log, "runs": dict(zip(names, runs)), "warnings": warnings}
    for message in warnings:
        say(f"warning: {message}")
    outcomes = opened.read("outcomes") if has_outcomes else None
    result["selection"] = _selection(opened, loaded, names, outcomes, select_split, policy_ids, seed)
    if has_decisions:
        result["off_policy"] = _off_policy(opened, loaded, names, outcomes, estimator_specs, policy_ids, seed, report_dir,
                                           overwrite)
    else:
        say(f"note: {log} has no decisions table: no off-policy estimates (simulate one with `bandit-log simulate {log}`)"
            + (f"; no report written to {report_dir}" if report_dir else ""))
    if outcomes is not None:
        result["true_values"] = _true_values(loaded, names, outcomes, arms)
    if as_json:
        emit_json(result)
        return
    _print_comparison(result)


def _selection(opened: Any, loaded: list, names: list[str], outcomes: Any, split: str, policy_ids: tuple[str, ...],
               seed: int) -> dict:
    """The selection rule on ``split``: exact with outcomes, off-policy (DR) with decisions only."""
    import numpy as np

    from bandit.suite import select_on_decisions, select_on_outcomes

    arms = opened.metadata.arm_names
    # hindsight runs (the oracle) are references; fixed-arm and uniform runs are added by the rule itself
    keep = [(n, r) for n, r in zip(names, loaded)
            if not getattr(r.config, "hindsight", False) and getattr(r.config, "name", "") not in ("fixed", "uniform")]
    names, loaded = [n for n, _ in keep], [r for _, r in keep]

    def part(frame: Any) -> Any:
        if split == "all" or "split" not in frame.columns:
            return frame
        return frame[(frame["split"].astype(object) == split).to_numpy()]

    if outcomes is not None and len(part(outcomes)):
        sel = select_on_outcomes(dict(zip(names, loaded)), part(outcomes), arms)
    elif opened.has("decisions"):
        decisions = opened.read("decisions")
        if policy_ids:
            decisions = decisions[decisions["policy_id"].astype(str).isin(policy_ids)]
        decisions = part(decisions).reset_index(drop=True)
        if decisions.empty:
            return {"split": split, "note": f"no outcomes or decisions in the {split!r} split to select on"}
        targets = {name: np.asarray(run.probabilities(decisions), dtype=np.float64) for name, run in zip(names, loaded)}
        sel = select_on_decisions(targets, decisions, arms, "dr", seed=seed)
        say(f"note: selection on {split} uses off-policy DR estimates of {len(decisions)} logged decisions (no outcomes there)")
    else:
        return {"split": split, "note": f"no outcomes or decisions in the {split!r} split to select on"}
    return {"split": split, **sel.to_json(), "table": sel.table()}


def _off_policy(opened: Any, loaded: list, names: list[str], outcomes: Any, estimator_specs: tuple[str, ...],
                policy_ids: tuple[str, ...], seed: int, report_dir: str | None, overwrite: bool = False) -> dict:
    import numpy as np

    try:
        from estimators import CrossFitRewardModel, parse_estimator

        from bandit.report import evaluate_policies
    except ImportError as exc:  # the estimators library is another package of this project
        raise ValueError(f"off-policy comparison needs the estimators library, which cannot be imported: {exc}") from None
    decisions = opened.read("decisions")
    if policy_ids:
        present = set(decisions["policy_id"].astype(str))
        unknown = sorted(set(policy_ids) - present)
        if unknown:
            raise ValueError(f"--policy-id {', '.join(unknown)}: not in the decisions table (policy_ids: {', '.join(sorted(present))})")
        decisions = decisions[decisions["policy_id"].astype(str).isin(policy_ids)].reset_index(drop=True)
    decisions, split = _held_out(decisions, "decisions")
    arms = opened.metadata.arm_names
    targets = {}
    for name, run in zip(names, loaded):
        try:
            targets[name] = np.asarray(run.probabilities(decisions), dtype=np.float64)
        except ValueError as exc:
            say(f"note: {name} cannot be scored on these decisions ({exc}); left out of the off-policy report")
    if not targets:
        if report_dir:
            say(f"note: no run could be scored on the decisions; no report written to {report_dir}")
        return {"split": split, "n": len(decisions), "note": "no run could be scored on the decisions"}
    estimators = [parse_estimator(s) for s in (estimator_specs or DEFAULT_ESTIMATORS)]
    say(f"off-policy: {len(targets)} runs x {len(estimators)} estimators on {len(decisions)} decisions (split {split or 'all'})")
    evaluation = evaluate_policies(decisions, arms, targets, estimators, outcomes=outcomes,
                                   reward_model=CrossFitRewardModel(seed=seed), seed=seed,
                                   sources={name: f"run folder {run.path}" for name, run in zip(names, loaded) if name in targets})
    if report_dir:
        from .evaluate import write_report

        say(f"wrote {write_report(evaluation, report_dir, overwrite)}")
    return {"split": split, **evaluation.to_json()}


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def _print_comparison(result: dict) -> None:
    lines: list[str] = []
    sel = result.get("selection") or {}
    if "table" in sel:
        lines += [f"[{sel['split']} split] " + sel["table"], ""]
    elif "note" in sel:
        lines += [f"selection: {sel['note']}", ""]
    off = result.get("off_policy")
    if off and "rows" in off:
        lines.append(f"off-policy estimates on {off['n']} decisions (split {off['split'] or 'all'}):")
        cells = [["run", "estimator", "estimate", "ci", "true (decisions)"]]
        for row in off["rows"]:
            cells.append([row["policy"], row["estimator"], _fmt(row["estimate"]),
                          f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]", _fmt(row["true_value"])])
        widths = [max(len(c[i]) for c in cells) for i in range(5)]
        lines += ["  " + "  ".join(c[i].ljust(widths[i]) for i in range(5)).rstrip() for c in cells]
    truth = result.get("true_values")
    if truth and "runs" in truth:
        ref = truth["references"]
        lines.append(f"true values on {truth['n_prompts']} held-out prompts (split {truth['split'] or 'all'}): "
                     f"oracle {ref['oracle']:.4f}, best arm {ref['best_arm']} {ref['best_arm_value']:.4f}, uniform {ref['uniform']:.4f}")
        for name, v in truth["runs"].items():
            share = v.get("share_of_oracle")
            lines.append(f"  {name}: {_fmt(v['value'])}" + (f" ({100 * share:.1f}% of oracle)" if share is not None else f" ({v.get('note', '')})"))
    click.echo("\n".join(lines))
