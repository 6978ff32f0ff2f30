"""``bandit-log train`` and ``bandit-log compare``: thin over ``bandit.runs`` and ``bandit.pipeline``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bandit.cli._common import emit_json, report_options, say, stderr_is_tty

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
@report_options("Also write report.html and report.json (the off-policy report) into this new folder (written whole, "
                "then renamed into place; only with a decisions table).")
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
    from logging_data import open_log, require_valid_log
    from logging_data.outputs import REPORT, check_output

    from bandit.pipeline import by_policy_ids, deployable, held_out, off_policy, select_on_split, true_values
    from bandit.runs import load_run

    if report_dir:  # before any work: a new or empty folder, or (--overwrite) a report; apart from the inputs, outside every log
        check_output(report_dir, REPORT, option="--report", if_exists="overwrite", overwrite=overwrite,
                     inputs=[("LOG", log), *(("RUN", r) for r in runs)])
    require_valid_log(log)
    opened = open_log(log)
    arms = opened.metadata.arm_names
    loaded: dict[str, Any] = {}
    warnings: list[str] = []
    for path in runs:
        run = load_run(path)
        warnings += run.check_log(opened.metadata, f"log {log}")
        loaded[run.name if run.name not in loaded else f"{run.name} ({path})"] = run
    has_outcomes, has_decisions = opened.has("outcomes"), opened.has("decisions")
    if not has_outcomes and not has_decisions:
        raise ValueError(f"{log}: the log has neither outcomes nor decisions; nothing to compare on")
    result: dict[str, Any] = {"log": log, "runs": dict(zip(loaded, runs)), "warnings": warnings}
    for message in warnings:
        say(f"warning: {message}")
    outcomes = opened.read("outcomes") if has_outcomes else None
    decisions = opened.read("decisions") if has_decisions else None
    sel = select_on_split(deployable(loaded), arms, select_split, outcomes=outcomes, seed=seed, say=say,
                          decisions=by_policy_ids(decisions, policy_ids, strict=False) if has_decisions else None)
    result["selection"] = ({"split": select_split, **sel.to_json(), "table": sel.table()} if sel is not None else
                           {"split": select_split, "note": f"no outcomes or decisions in the {select_split!r} split to select on"})
    if has_decisions:
        held, split = held_out(by_policy_ids(decisions, policy_ids), "decisions", say)
        evaluation = off_policy(loaded, held, arms, outcomes=outcomes, estimators=estimator_specs, seed=seed, split=split, say=say)
        if evaluation is None:
            if report_dir:
                say(f"note: no run could be scored on the decisions; no report written to {report_dir}")
            result["off_policy"] = {"split": split, "n": len(held), "note": "no run could be scored on the decisions"}
        else:
            if report_dir:
                from .evaluate import write_report

                say(f"wrote {write_report(evaluation, report_dir, overwrite)}")
            result["off_policy"] = {"split": split, **evaluation.to_json()}
    else:
        say(f"note: {log} has no decisions table: no off-policy estimates (simulate one with `bandit-log simulate {log}`)"
            + (f"; no report written to {report_dir}" if report_dir else ""))
    if outcomes is not None:
        result["true_values"] = true_values(loaded, outcomes, arms, say)
    if as_json:
        emit_json(result)
        return
    _print_comparison(result)


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
