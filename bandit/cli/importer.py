"""``bandit-log import``: logged bandit feedback from a CSV, Parquet or JSON Lines file into a decisions log.

Thin over ``logging_data.importer``.
"""

from __future__ import annotations

import click

from ._common import emit_json, say


def _non_empty(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter(f"must be a non-empty name (it is recorded on every row); got {value!r}")
    return value


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str), help="The new log (a new or empty folder, outside every log; written whole, then renamed into place).")
@click.option("--overwrite", is_flag=True,
              help="Replace a log an earlier import wrote at --out (only such a log, with nothing appended since, and only "
                   "once the new one is complete).")
@click.option("--action", required=True, help="Column of the logged action (OBP: action).")
@click.option("--reward", required=True, help="Column of the observed reward (OBP: reward).")
@click.option("--propensity", required=True, help="Column of the logging policy's probability of the logged action (OBP: pscore).")
@click.option("--context", "context", multiple=True,
              help="A numeric context column, kept as x_NAME (repeatable; OBP: context); a glob such as 'user_feature_*' "
                   "takes every column it matches (quote it in a shell).")
@click.option("--position", default=None, help="Column of the slot position, kept as x_position (OBP: position).")
@click.option("--id-col", default=None, help="Column of unique row ids (default: row-0000001, ...).")
@click.option("--prompt-col", default=None, help="Column of prompt text (default: empty).")
@click.option("--domain-col", default=None, help="Column of a domain label.")
@click.option("--split-col", default=None, help="Column of train/validation/test (default: seeded 60/20/20).")
@click.option("--arms", default=None, help="The arms in order, comma-separated (default: the sorted distinct actions).")
@click.option("--policy-id", default="logged", show_default=True, callback=_non_empty, help="policy_id recorded on every row.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "jsonl"]), default=None, help="File format (default: from the suffix).")
@click.option("--reward-description", default=None, help="What the reward means (recorded in the log's metadata).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the splits made when --split-col is absent.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def import_(file, out, overwrite, action, reward, propensity, context, position, id_col, prompt_col, domain_col, split_col, arms, policy_id,
            fmt, reward_description, seed, as_json):
    """Import logged bandit feedback (one row per decision) as a decisions log.

    Every estimator, `bandit-log evaluate` (with --policy-table for a target policy given as
    action probabilities; its DM/DR reward model reads the --context columns recorded here)
    and the HTML report then work on it.

    The propensities are checked against how often each action is logged per context (the
    --context, --position, --prompt-col and --domain-col values; all rows one context without
    them): a logger with propensity 1 that takes several actions in one context is refused, and
    a clear disagreement is printed as a warning line with the numbers.

    \b
    Example (Open Bandit Pipeline's names in the file):
      bandit-log import logged.csv --out LOG2 --action action --reward reward --propensity pscore --context 'x*'
      bandit-log evaluate LOG2 --policy-table target.csv --estimator ips --estimator dr --report out/obp
      bandit-log import logged.csv --out LOG2 --action action --reward reward --propensity pscore --overwrite
    """
    import shlex
    import sys
    import warnings

    from pathlib import Path

    from logging_data import open_log
    from logging_data.importer import ImportMapping, PropensityWarning, import_decisions
    from logging_data.outputs import IMPORTED_LOG, check_output, publish, staged

    # a new log, or (--overwrite) import's own: checked before the file is read
    check_output(out, IMPORTED_LOG, inputs=[("FILE", file)], if_exists="overwrite", overwrite=overwrite)

    mapping = ImportMapping(action=action, reward=reward, propensity=propensity, context=tuple(context), position=position,
                            query_id=id_col, prompt=prompt_col, domain=domain_col, split=split_col)
    settings = dict(fmt=fmt, policy_id=policy_id, arms=[a.strip() for a in arms.split(",")] if arms else None,
                    description=reward_description, seed=seed, command=shlex.join(["bandit-log"] + sys.argv[1:]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if IMPORTED_LOG.is_one(Path(out)):  # --overwrite: the new log is written whole beside it, then swapped in
            with staged(out) as stage:
                import_decisions(file, stage / "log", mapping, **settings)
                publish(stage / "log", out, replace=True)
        else:
            import_decisions(file, out, mapping, **settings)
    log = open_log(out)
    messages = [str(w.message) for w in caught if issubclass(w.category, PropensityWarning)]
    for w in caught:
        if not issubclass(w.category, PropensityWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for message in messages:
        say(f"warning: {message}")
    summary = {"out": out, "n_rows": log.n_rows("decisions"), "arms": list(log.metadata.arm_names),
               "context": list(log.extra_types("decisions")), "policy_id": policy_id, "warnings": messages}
    if as_json:
        emit_json(summary)
    else:
        say(f"{out}: {summary['n_rows']} decisions over arms {', '.join(summary['arms'])}; "
            f"context {', '.join(summary['context']) or 'none'}")
