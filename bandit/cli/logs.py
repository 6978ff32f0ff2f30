"""``bandit-log validate`` and ``bandit-log describe``: look at a log before using it.

Thin over ``logging_data.validate_log`` and ``logging_data.describe.describe_log``: this module
only formats their results (a readable text on stdout, or one JSON document with ``--json``).
"""

from __future__ import annotations

from typing import Any

import click

from bandit.cli._common import emit_json, say


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """Rows as aligned text columns: the first left-aligned, the others right-aligned."""
    cells = [header] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        parts = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(parts).rstrip())
    return lines


@click.command()
@click.argument("log", type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document on stdout.")
@click.option(
    "--clean",
    is_flag=True,
    help="First remove temporary files left by interrupted appends (refused while a build or another writer holds the log).",
)
def validate(log: str, as_json: bool, clean: bool) -> None:
    """Check LOG against the log contract and report every problem at once.

    Exit status 0 when the log is valid, 1 when it has problems (each listed with its first
    offending rows) or is not a log at all.

    \b
    Example:
      bandit-log validate LOG
      bandit-log validate LOG --json --clean
    """
    from logging_data import open_log, validate_log

    opened = open_log(log)  # not a log at all: a one-line error at the CLI edge
    if clean:
        n = opened.remove_stale_temporaries(f"bandit-log validate {log} --clean")
        say(f"removed {n} temporary file(s) left by interrupted appends")
    report = validate_log(log)
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo("\n".join(_validate_lines(report)))
    if not report.ok:
        raise click.exceptions.Exit(1)


def _validate_lines(report: Any) -> list[str]:
    sizes = ", ".join(f"{t}: {report.n_rows.get(t, 0)} rows in {report.n_parts.get(t, 0)} part(s)" for t in report.n_parts)
    if report.ok:
        lines = [f"{report.path}: ok ({sizes})"]
    else:
        lines = [f"{report.path}: {len(report.problems)} problem(s) ({sizes})"]
        lines += [f"  - {p}" for p in report.problems]
    lines += [f"  note: {n}" for n in report.notes]
    return lines


@click.command()
@click.argument("log", type=click.Path(file_okay=True, dir_okay=True, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON document on stdout.")
def describe(log: str, as_json: bool) -> None:
    """Summarise LOG: rows, arms, reward definition, reward statistics per arm and per domain,
    queries per split, and for decisions the propensity range and rows per policy.

    A measured log (wall times beside its counts, and a calibration: `bandit-log build`
    without --alignment-only) also gets the count model against the wall clock per arm: both
    speed-ups as ratios of totals over the same prompts, and arms the count model misprices by
    more than 10% named (JSON: `count_against_wall`).

    A log that breaks the contract is refused with its first problems (`bandit-log validate`
    lists them all), as every command that reads a log does.

    \b
    Example:
      bandit-log describe LOG
      bandit-log describe LOG --json > summary.json
    """
    from logging_data import open_log, require_valid_log
    from logging_data.describe import describe_log

    open_log(log)  # not a log at all: a one-line error naming it
    require_valid_log(log)
    summary = describe_log(log)
    checked = count_against_wall_rows(log)
    if checked is not None:
        summary["count_against_wall"] = checked
    if as_json:
        emit_json(summary)
    else:
        click.echo("\n".join(_describe_lines(summary)))


MISPRICED = 0.10  # the count model within 10% of the wall clock per arm (issue 28's bar)


def count_against_wall_rows(log: str) -> list[dict[str, Any]] | None:
    """Per arm of a measured log: ``{arm, n_prompts, wall, count, count_over_wall, lossless}`` under
    the log's own calibration (``decoding.reprice.count_against_wall``); None for a log without
    measured rows or without a calibration (an alignment-only or imported log: nothing to check,
    and the count model's modules are not imported for it)."""
    from logging_data import open_log

    opened = open_log(log)
    record = opened.metadata.extra.get("calibration")
    if not record or not opened.has("outcomes"):
        return None
    frame = opened.read("outcomes", ["query_id", "arm", "wall_time_s", "plain_wall_time_s", "n_new_tokens", "target_calls",
                                     "draft_calls", "draft_tokens", "n_prompt_tokens", "lossless"])
    if not (frame["wall_time_s"].notna() & frame["plain_wall_time_s"].notna()).any():
        return None
    from decoding.pricing import Calibration
    from decoding.reprice import count_against_wall

    table = count_against_wall(frame, {a.name: a.kind for a in opened.metadata.arms}, {"log": Calibration.from_json(record)})
    return [{"arm": r["arm"], "n_prompts": int(r["n_prompts"]), "wall": float(r["wall"]), "count": float(r["count log"]),
             "count_over_wall": float(r["count/wall log"]), **({"lossless": bool(r["lossless"])} if "lossless" in r else {})}
            for r in table.to_dict("records")]


def _count_against_wall_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["", "count model against the wall clock (measured rows, the log's calibration; ratios of totals):"]
    lines += ["  " + x for x in _table(["arm", "prompts", "wall", "count", "count/wall"],
                                       [[r["arm"], r["n_prompts"], r["wall"], r["count"], r["count_over_wall"]] for r in rows])]
    off = [f"{r['arm']} ({r['count_over_wall']:.2f})" for r in rows if abs(r["count_over_wall"] - 1.0) > MISPRICED]
    if off:
        lines += [f"  beyond {MISPRICED:.0%}: {', '.join(off)}: the count model misprices them on this log's machine; "
                  "calibrate again on an idle machine (`bandit-log calibrate`), or re-price with costs fitted to these "
                  "wall times (`bandit-log reprice LOG --out OUT --calibration fit:LOG`)"]
    else:
        lines += [f"  every arm within {MISPRICED:.0%}"]
    return lines


def _describe_lines(s: dict[str, Any]) -> list[str]:
    r = s["reward_definition"]
    reward = f"{r['kind']}" + (f" ({r['metric']} - {r['alpha']:g} x arm_cost)" if r["kind"] == "alignment" else "")
    if r.get("description"):
        reward += f": {r['description']}"
    lines = [
        f"log {s['path']} (schema {s['schema_version']})",
        "rows: " + ", ".join(f"{t} {n} in {s['parts'][t]} part(s)" for t, n in s["rows"].items()),
        f"reward: {reward}",
        "",
        "arms:",
    ]
    lines += ["  " + x for x in _table(["arm", "index", "kind", "cost"], [[a["name"], a["index"], a["kind"], a["cost"]] for a in s["arms"]])]
    stats = ["count", "mean", "std", "min", "max"]
    for table in ("outcomes", "decisions"):
        t = s.get(table)
        if t is None:
            continue
        lines += ["", f"{table}: {t['n_rows']} rows, {t['n_queries']} queries"]
        lines += ["  reward by arm:"]
        lines += ["    " + x for x in _table(["arm"] + stats, [[g["arm"]] + [g[k] for k in stats] for g in t["reward_by_arm"]])]
        lines += ["  reward by domain:"]
        lines += ["    " + x for x in _table(["domain"] + stats, [[g["domain"] if g["domain"] is not None else "(none)"] + [g[k] for k in stats] for g in t["reward_by_domain"]])]
        lines += ["  queries by split: " + ", ".join(f"{k} {v}" for k, v in t["queries_by_split"].items())]
        if table == "decisions":
            p = t["propensity"]
            lines += [f"  propensity range: [{_fmt(p['min'], 6)}, {_fmt(p['max'], 6)}]", "  policies:"]
            rows = [[q["policy_id"], q["count"], q["propensity_min"], q["propensity_max"], q["reward_mean"]] for q in t["policies"]]
            lines += ["    " + x for x in _table(["policy_id", "rows", "p_min", "p_max", "reward_mean"], rows)]
    if s.get("count_against_wall"):
        lines += _count_against_wall_lines(s["count_against_wall"])
    return lines
