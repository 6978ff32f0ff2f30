"""``bandit-log drafters``: train, tune and add drafting heads or a retrieval store for a user's own target.

Thin over ``decoding.drafters`` (``heads_run.run_heads``, ``stores_run.add_stores``): the source log
and models file are checked before any model loads, the output folder is written whole beside
``--out`` and renamed into place, and torch and transformers are imported only when a command runs.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from logging_data.outputs import DRAFTER_OUTPUT, check_output, publish, staged

from ._common import EXIT_LOSSLESS_FAILED, emit_json, say, stderr_is_tty


@click.group()
def drafters() -> None:
    """Train, tune and add drafting heads or a retrieval store for your own target.

    Each command reads a full-information log with a `plain` arm and `target_output` (what
    `bandit-log build` writes) and its models file, and writes a folder: the drafters, `models.toml`
    (the models file's arms and the new ones), `log` (a priced full-information log: the source rows
    and the drafters' replayed counts, every count exact) and `summary.json`. A run that fails or is
    killed keeps the target's outputs and states it computed in `.OUT.cache` beside OUT: the same
    command reads them back (the slow part on a large target) and removes the folder when it is done.

    \b
    Example (LOG from `bandit-log build prompts.parquet --models models.toml --out LOG --reward speedup_count`):
      bandit-log drafters heads LOG --models models.toml --out heads-out --epochs 1
      bandit-log drafters store LOG --models models.toml --out store-out --json
      bandit-log train heads-out/log --policy regression --out runs/heads-ridge
    """


@dataclass(frozen=True)
class Source:
    """The checked inputs: the models file and the calibration to price with (None: the log's own)."""

    models: Any
    calibration: Path | None
    lookup: str | None


def _check_source(log: str, models_path: str, out: str, overwrite: bool, calibration_path: str | None, lookup: str | None) -> Source:
    """Everything a run reads, checked before any model loads: the output folder (new, or one of ours with
    ``--overwrite``), the models file, the log (``decoding.drafters.logs.check_source_log``), the calibration
    (it must price every arm of the log) and the lookup arm. Bad input is a ``click.BadParameter`` (exit 2)."""
    from decoding.pricing import Calibration, for_arms, load_calibration
    from decoding.drafters.logs import check_source_log
    from decoding.models import load_models_config
    from logging_data import open_log

    models = load_models_config(models_path)
    check_output(out, DRAFTER_OUTPUT, inputs=[("LOG", log), ("--models", models_path), ("--calibration", calibration_path),
                                              *models.input_paths()], if_exists="overwrite", overwrite=overwrite)
    try:
        check_source_log(Path(log), models.arm_names, need_calibration=calibration_path is None)
    except ValueError as exc:
        message = str(exc)
        raise click.BadParameter(message.removeprefix("LOG "), param_hint="LOG" if message.startswith("LOG ") else "--models") from None
    try:
        cal = load_calibration(calibration_path) if calibration_path else Calibration.from_json(open_log(log).metadata.extra["calibration"])
        for_arms(cal, [models.arm(a) for a in open_log(log).metadata.arm_names])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        where = str(calibration_path or log)
        raise click.BadParameter(str(exc) if where in str(exc) else f"{where}: {exc}",
                                 param_hint="--calibration" if calibration_path else "LOG") from None
    return Source(models, Path(calibration_path) if calibration_path else None, _lookup_arm(models, lookup))


def _lookup_arm(models: Any, name: str | None) -> str | None:
    """The prompt-lookup arm the ``lookup-head-*`` arms start from: ``name`` ('none': no such arms), by
    default ``lookup-n3-k10`` when the models file has it, else its first prompt-lookup arm (or none)."""
    from decoding.drafters.models_file import LIVE_LOOKUP

    lookups = [a.name for a in models.arms if a.kind == "prompt_lookup"]
    if name is None:
        return LIVE_LOOKUP if LIVE_LOOKUP in lookups else (lookups[0] if lookups else None)
    if name == "none":
        return None
    if name not in lookups:
        raise click.BadParameter(f"expected a prompt_lookup arm of the models file ({', '.join(lookups) or 'it has none'}) or "
                                 f"'none'; got {name!r}", param_hint="--lookup")
    return name


def _learners(value: str | None, budget: str) -> tuple[str, ...] | None:
    from bandit.suite import check_plan

    learners = tuple(x.strip() for x in value.split(",") if x.strip()) if value else None
    try:
        check_plan(learners or (), budget)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--learners") from None
    return learners


@contextlib.contextmanager
def _progress_on_tty() -> Iterator[None]:
    """The package's runs say their steps on stderr: kept there on a terminal, dropped otherwise (as ``progress=stderr_is_tty()``)."""
    if stderr_is_tty():
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def cache_folder(out: str) -> Path:
    """Where a run on ``out`` keeps the target's outputs and states while it lasts: a hidden folder beside
    ``out``, kept when the run fails or is killed (the same command then reads back what it holds for the
    same prompts and target) and removed once the output is in place."""
    return Path(out).parent / f".{Path(out).name}.cache"


def _write_whole(out: str, overwrite: bool, run: Callable[[Path, Path], dict[str, Any]]) -> dict[str, Any]:
    """``run(folder, cache)`` into a hidden folder beside ``out``, then renamed into place: a failure leaves
    nothing at ``out`` (and an older output there as it was) and keeps ``cache`` (``cache_folder``) for a rerun."""
    cache = cache_folder(out)
    try:
        with _progress_on_tty(), staged(out) as stage:
            result = run(stage / "out", cache)
            publish(stage / "out", out, replace=overwrite)
    except BaseException:
        if cache.is_dir() and any(cache.iterdir()):
            say(f"kept {cache}: the target's outputs computed so far; the same command reads them back")
        raise
    shutil.rmtree(cache, ignore_errors=True)
    return result


def _finish(doc: dict[str, Any], checks: list[dict[str, Any]], as_json: bool, first: str, drafters: str) -> None:
    """Print the summary (JSON, or ``first`` and the lines every drafter kind shares; ``drafters``:
    what the new arms are, e.g. "heads'"); exit 3 when a live check differed from greedy or from the
    replayed counts."""
    if as_json:
        emit_json(doc)
    else:
        lines = [first,
                 f"  {doc['models']} (the models file's arms and the {drafters}), {doc['log']} (priced; `bandit-log compare/train/evaluate` take it)",
                 f"  live check: {doc['live_check']['same_counts']}/{doc['live_check']['checked']} with the replayed counts, "
                 f"{doc['live_check']['lossless']}/{doc['live_check']['checked']} identical to greedy"]
        if "selection" in doc:
            lines.append(f"  selected on validation: {doc['selection']['winner']}")
        click.echo("\n".join(lines))
    bad = [c for c in checks if not (c["lossless"] and c["same_counts"])]
    if bad:
        say(f"live check: {len(bad)} of {len(checks)} decodings differ from greedy or from the replayed counts "
            f"(first: query_id={bad[0]['query_id']}, arm {bad[0]['arm']}); the log's counts are not exact")
        raise SystemExit(EXIT_LOSSLESS_FAILED)


def _common_summary(out: str, result: dict[str, Any], new_arms: list[str]) -> dict[str, Any]:
    checks = result["live_check"]
    doc = {"out": out, "models": str(Path(out) / "models.toml"), "log": str(Path(out) / "log"), "n_prompts": result.get("n_prompts"),
           "domains": result["domains"], "arms": new_arms,
           "live_check": {"checked": len(checks), "lossless": sum(c["lossless"] for c in checks),
                          "same_counts": sum(c["same_counts"] for c in checks)}}
    if "cpu" in result:
        doc["selection"] = {k: result["cpu"][k] for k in ("winner", "selection_reason", "test_against_best_arm", "test_overall")}
    if "live" in result:
        doc["live"] = result["live"]["per_arm_by_domain"]
    return doc | {"seconds": result["seconds"]}


def _new_arms(out: str, models: Any) -> list[str]:
    from decoding.models import load_models_config

    return [a for a in load_models_config(Path(out) / "models.toml").arm_names if a not in models.arm_names]


#: the options both commands share: output, pricing, sizes, checks, selection
RUN_OPTIONS = (
    click.option("--models", "models_path", required=True, type=click.Path(exists=True, dir_okay=False),
                 help="LOG's models file (its target and arms)."),
    click.option("--out", required=True, type=click.Path(file_okay=False),
                 help="Output folder (new or empty; written whole, then renamed into place: a failure leaves nothing)."),
    click.option("--overwrite", is_flag=True, help="Replace an output folder an earlier drafters command wrote (once the new one is done)."),
    click.option("--calibration", "calibration_path", type=click.Path(), default=None,
                 help="Price the counts with this cost profile (JSON, or a log) instead of LOG's calibration; the drafters' "
                      "steps are measured here."),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads (default: torch's choice)."),
    click.option("--max-prompts", type=click.IntRange(min=1), default=None,
                 help="Use about this many of LOG's prompts: the first of each domain x split, spread evenly (default: all)."),
    click.option("--live-check", type=click.IntRange(min=0), default=4, show_default=True,
                 help="Prompts whose replayed counts are checked against live decoding (every new arm of their domain)."),
    click.option("--select", "select", is_flag=True,
                 help="Also train every policy on the new log's train split, select on validation and test (OUT/select)."),
    click.option("--live-per-domain", type=click.IntRange(min=0), default=0, show_default=True,
                 help="Test prompts per domain decoded live with every new arm (OUT/log-live) and, with --select, the selected policy."),
    click.option("--budget", type=click.Choice(["default", "tiny"]), default="default", show_default=True,
                 help="With --select: the policies' training budget."),
    click.option("--learners", default=None, help="With --select: comma-separated learners (default: all of bandit.suite.LEARNERS)."),
    click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."),
)


#: training prompts beyond the log's, for heads and stores alike
TRAIN_PROMPTS = click.option(
    "--train-prompts", type=click.IntRange(min=0), default=0, show_default=True,
    help="Top each domain's train prompts up to this many with prompts mined on this machine (none of LOG's prompts, any split; "
         "the target's greedy outputs generated here: slow); 0: LOG's train prompts only.")


def _run_options(fn):
    for option in reversed(RUN_OPTIONS):
        fn = option(fn)
    return fn


@drafters.command("heads")
@click.argument("log", type=click.Path(exists=True, file_okay=False))
@_run_options
@click.option("--epochs", type=click.IntRange(min=1), default=4, show_default=True, help="Training epochs of each head.")
@TRAIN_PROMPTS
@click.option("--head-step", "head_step", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="The heads' drafting step in seconds on the machine --calibration describes [default: timed here]; give it "
                   "when the profile is another machine's (a GPU's: the step examples/gpu_heads.py measured there).")
@click.option("--lookup", default=None,
              help="The prompt_lookup arm the lookup-head arms start from ('none': no such arms) [default: lookup-n3-k10 "
                   "when MODELS has it, else its first prompt_lookup arm].")
def heads(log, models_path, out, overwrite, calibration_path, seed, threads, max_prompts, live_check, select, live_per_domain, budget,
          learners, as_json, epochs, train_prompts, head_step, lookup) -> None:
    """Train one drafting head per domain of LOG on its target's hidden states, and add them as arms.

    Per domain: a head trained on the domain's train prompts (the target's greedy outputs, from
    LOG's target_output); its setting (draft length x confidence gate) picked on the validation
    prompts under this machine's pricing (LOG's calibration or --calibration, the head's step timed
    here); every head arm (head-D-k3, head-D-k5, head-D-k5-gated, head-D-tuned, and lookup-head-D
    after a prompt-lookup arm) replayed on every prompt, exact counts checked live on a sample.

    OUT holds heads/ (one per domain), models.toml, log and summary.json; exit status 3 when a
    live check differed.

    \b
    Examples:
      bandit-log drafters heads LOG --models models.toml --out heads-out
      bandit-log drafters heads LOG --models models.toml --out heads-out --calibration gpu.json --head-step 0.0021 \\
          --epochs 2 --max-prompts 200 --select --json
    """
    from decoding.drafters.heads_run import HeadsRunConfig, Layout, run_heads

    source = _check_source(log, models_path, out, overwrite, calibration_path, lookup)
    plan = _learners(learners, budget)
    layout = Layout(models="models.toml", log="log", select="select", summary="summary.json", made_by="bandit-log drafters heads")

    def run(folder: Path, cache: Path) -> dict[str, Any]:
        return run_heads(HeadsRunConfig(out=folder, cache=cache, source_log=Path(log), models=Path(models_path), max_prompts=max_prompts,
                                        cells=None,
                                        calibration=source.calibration, lookup=source.lookup, select=select, layout=layout,
                                        epochs=epochs, seed=seed, threads=threads, live_check=live_check, budget=budget, learners=plan,
                                        live_per_domain=live_per_domain, router_live=live_per_domain, train_prompts=train_prompts,
                                        head_step_s=head_step))

    result = _write_whole(out, overwrite, run)
    doc = _common_summary(out, result, _new_arms(out, source.models)) | {
        "tuned": {d: t["setting"] for d, t in result["tuned"].items()}, "head_step_s": result["head_step_s_cpu"], "lookup": result["lookup"]}
    first = (f"{out}: {len(doc['arms'])} head arms for {', '.join(doc['domains'])} on {doc['n_prompts']} prompts "
             f"(head step {doc['head_step_s'] * 1e3:.2f} ms {'given' if head_step is not None else 'here'}); tuned on validation: "
             + ", ".join(f"{d} {s}" for d, s in doc["tuned"].items()))
    _finish(doc, result["live_check"], as_json, first, "heads'")


@drafters.command("store")
@click.argument("log", type=click.Path(exists=True, file_okay=False))
@_run_options
@TRAIN_PROMPTS
def store(log, models_path, out, overwrite, calibration_path, seed, threads, max_prompts, live_check, select, live_per_domain, budget,
          learners, as_json, train_prompts) -> None:
    """Build one retrieval store per domain of LOG from its target's greedy outputs, and add it as arms.

    Per domain: a store of the n-gram continuations in the target's greedy outputs of the domain's
    train prompts (LOG's target_output; a train prompt's own counts come from a store built without
    it: cross-fitted) and, with --train-prompts, of prompts mined on this machine; its setting (draft
    length x how many continuations must agree) picked on the validation prompts under this
    machine's pricing (LOG's calibration or --calibration); store-D
    (the fastest setting) and store-D-tuned (the fastest with acceptance >= 0.45) replayed on every
    prompt, exact counts checked live on a sample, each store's lookup timed here.

    OUT holds stores/ (one per domain), models.toml, log and summary.json; exit status 3 when a
    live check differed.

    \b
    Examples:
      bandit-log drafters store LOG --models models.toml --out store-out
      bandit-log drafters store LOG --models models.toml --out store-out --calibration gpu.json --select --json
      bandit-log drafters store LOG --models models.toml --out store-out --train-prompts 1000
    """
    from decoding.drafters.stores_run import StoresAddConfig, add_stores

    source = _check_source(log, models_path, out, overwrite, calibration_path, "none")
    plan = _learners(learners, budget)

    def run(folder: Path, cache: Path) -> dict[str, Any]:
        return add_stores(StoresAddConfig(out=folder, cache=cache, source_log=Path(log), models=Path(models_path), calibration=source.calibration,
                                          max_prompts=max_prompts, seed=seed, threads=threads, live_check=live_check, select=select,
                                          live_per_domain=live_per_domain, budget=budget, learners=plan, train_prompts=train_prompts))

    result = _write_whole(out, overwrite, run)
    doc = _common_summary(out, result, _new_arms(out, source.models)) | {
        "settings": {n: {k: v for k, v in s.items() if k in ("store_tokens", "min_count", "min_fraction")} for n, s in result["settings"].items()},
        "store_step_s": result["store_step_s"], "stores": result["stores"]}
    first = (f"{out}: {len(doc['arms'])} store arms for {', '.join(doc['domains'])} on {doc['n_prompts']} prompts; "
             + ", ".join(f"{d} {s['tokens']} tokens" for d, s in doc["stores"].items()))
    _finish(doc, result["live_check"], as_json, first, "stores'")
