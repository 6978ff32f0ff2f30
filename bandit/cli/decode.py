"""``bandit-log build`` and ``bandit-log decode``: the commands that run real models.

Thin over ``decoding.build`` and ``decoding.loop``; torch and transformers are imported only
when a command runs.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any, Callable

import click

from logging_data.outputs import COST_PROFILE, LOG, REPRICED_LOG, check_output, new_log_or_nothing, publish, staged
from logging_data.schema import REWARD_CHOICES

from ._common import EXIT_LOSSLESS_FAILED, emit_json, prompt_file_options, say, stderr_is_tty

REWARDS = REWARD_CHOICES


def _command_line() -> str:
    """The command as run, rebuilt from click's parsed parameters (every non-default option, in declaration order)."""
    ctx = click.get_current_context()
    words = ["bandit-log", ctx.info_name or ""]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif isinstance(param, click.Option) and value != param.get_default(ctx) and value is not None:
            if param.is_flag and param.secondary_opts:
                words.append(param.opts[0] if value else param.secondary_opts[0])
            elif param.is_flag:
                words.append(param.opts[0])
            else:
                words += [param.opts[0], str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _exit_on_lossless_failures(models, out: str, table: str, n_failures: int) -> None:
    """Exit with status 3 when an exact run's output differs from plain greedy. Under a faster,
    inexact dtype the user chose, differences are expected: say so plainly, with the share of
    plain greedy output kept (``token_match_rate``), and do not fail."""
    from decoding.loading import EXACT_DTYPES

    if models.target.dtype in EXACT_DTYPES:
        if n_failures:
            sys.exit(EXIT_LOSSLESS_FAILED)
        return
    from decoding.build import lossless_report
    from logging_data import open_log

    report = lossless_report(open_log(out), table)
    rate = report["token_match_rate"]
    say(f"inexact mode ([target] dtype = {models.target.dtype!r}): {report['n_differ']} of {report['n_checked']} assisted runs in "
        f"{out} differ from plain greedy output; mean token-match rate {'n/a' if rate is None else f'{rate:.3f}'} "
        f"(the share of plain greedy output reproduced before the first difference). "
        f"dtype = \"auto\" or \"float32\" gives identical output.")


def _finish(summary: Any, as_json: bool, models: Any, out: str, table: str, line: Callable[[], str]) -> None:
    """A build's or a decode's end: its summary as JSON (``--json``) or ``line()`` on stderr, then
    ``_exit_on_lossless_failures`` on ``table``."""
    if as_json:
        emit_json(dict(summary.__dict__))
    else:
        say(line())
    _exit_on_lossless_failures(models, out, table, summary.n_lossless_failures)


@click.command("build")
@click.argument("prompts", type=click.Path(dir_okay=False))
@prompt_file_options
@click.option("--models", "models_path", required=True, type=click.Path(dir_okay=False), help="Models TOML (target + arms).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Log directory (created, or resumed); never inside another log or around an input. A new log that "
                   "fails before its first rows is removed again.")
@click.option("--limit", type=int, default=None, help="Use only the first N prompts (after --split).")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default=None, help="Use only prompts of this split.")
@click.option("--repeats", type=int, default=1, show_default=True, help="Timed repeats per measurement (median wall time).")
@click.option("--warmup", type=int, default=0, show_default=True, help="Untimed runs before the timed ones.")
@click.option("--alpha", type=float, default=0.0, show_default=True, help="Cost weight of alignment rewards.")
@click.option("--reward", type=click.Choice(REWARDS), default="align_accept", show_default=True, help="What the reward column holds.")
@click.option("--max-new-tokens", type=int, default=None, help="Override [target] max_new_tokens.")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Prompts per greedy batch and per appended part.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Override [target] device.")
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
@click.option("--alignment-only", "alignment_only", is_flag=True,
              help="Greedy runs and alignment only: no assisted decoding, measured columns left null (needs an align_* "
                   "reward, or speedup_count when every arm is plain or prompt lookup: exact replayed counts).")
@click.option("--calibration", "calibration_path", type=click.Path(), default=None,
              help="Price the count model with these step costs (a log directory or a JSON cost profile) instead of calibrating now.")
@click.option("--shard", "shard_spec", default=None, metavar="I/N",
              help="Build only shard I of N (0 <= I < N; prompts split by a stable hash of their id). Run N processes "
                   "with I = 0..N-1 into the same --out: they share the log, the first one calibrates and creates it.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Build on a Ray pool: a local one (bare --ray) or the cluster at ADDRESS (e.g. auto, ray://host:10001). "
                   "--out must be writable by every worker.")
@click.option("--workers", type=int, default=2, show_default=True, help="With --ray: actors, each loading the models once.")
@click.option("--shards", "n_shards", type=int, default=None, help="With --ray: shards to split the prompts into (default 4 per worker).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def build(prompts, models_path, out, limit, split, repeats, warmup, alpha, reward, max_new_tokens, batch_size, device, threads,
          alignment_only, calibration_path, shard_spec, ray_address, workers, n_shards, as_json, prompt_columns, prompts_format):
    """Build a full-information log: every arm's outcome for every prompt.

    For each prompt: the target's greedy output, each arm's own greedy output and its
    alignment, and measured assisted decoding (wall time, target/draft passes, accepted tokens,
    speed-ups, lossless check). Re-running the same command resumes an interrupted build.
    Exit status 3: some assisted output differed from plain greedy (rows with lossless = false).

    A new log is created once the models have loaded and every prompt encoded; when the build
    then fails before its first rows are appended (an arm that cannot run, calibration), the log
    it created is removed again, so the corrected command (other arms, another reward) starts
    afresh. A log with rows is kept and resumed by key, and an existing log is never removed.

    PROMPTS: Parquet, CSV, JSON Lines or a text file with one prompt per line (by suffix, or
    --prompts-format); --id-col/--prompt-col/--domain-col/--split-col name its columns. Ids are
    made from the prompt text when the file has none, splits (60/20/20, seeded) when it has none.

    With --alignment-only, the research's cheap log: the target's and each arm's own greedy
    output (batched), the alignment columns, arm_cost from the calibration and the reward
    align_* - alpha * arm_cost; no assisted decoding runs, so wall times, speed-ups and the
    draft arms' counts stay null (plain and prompt lookup get their exact counts from a replay).
    When every arm is plain or prompt lookup, --alignment-only --reward speedup_count is the
    cheap exact log: batched greedy runs of the target only, every count replayed exactly.

    \b
    Examples:
      bandit-log build prompts.parquet --models models.toml --out LOG --limit 50 --repeats 3 --warmup 1
      bandit-log build prompts.parquet --models models.toml --out ALIGN --alignment-only --alpha 0.1
      bandit-log build my-prompts.csv --prompt-col text --id-col id --models models.toml --out LOG
      bandit-log build prompts.parquet --models examples/models/smollm2-joint.toml --out REPLAY \\
          --alignment-only --reward speedup_count --batch-size 32 --calibration examples/data/smollm2-log
      bandit-log build prompts.parquet --models models.toml --out LOG --shard 0/2 & \\
          bandit-log build prompts.parquet --models models.toml --out LOG --shard 1/2 && wait $!
      bandit-log build prompts.parquet --models models.toml --out LOG --ray --workers 2
    """
    from dataclasses import replace

    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.pricing import PRICED_KINDS, calibration_source_label, load_calibration
    from decoding.models import load_models_config
    from logging_data.shards import parse_shard

    if ray_address is not None and shard_spec is not None:
        raise click.UsageError("--ray makes its own shards; use either --ray or --shard I/N")
    try:
        shard = parse_shard(shard_spec) if shard_spec is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shard") from None
    models = load_models_config(models_path)
    check_output(out, LOG, inputs=[("PROMPTS", prompts), ("--calibration", calibration_path), *models.input_paths()],
                 if_exists="continue")  # a log is resumed; nothing else is written into, before any model loads
    calibration = load_calibration(calibration_path) if calibration_path else None
    definition = reward_definition(reward, alpha)
    if calibration is not None and definition.kind in PRICED_KINDS:
        definition = replace(definition, priced_by=calibration_source_label(calibration_path))
    cfg = BuildConfig(reward=definition, limit=limit, split=split, repeats=repeats, warmup=warmup,
                      max_new_tokens=max_new_tokens, batch_size=batch_size, measure=not alignment_only,
                      prompt_columns=prompt_columns, prompts_format=prompts_format, shard=shard)
    if ray_address is not None:
        from decoding.ray_build import RaySettings, build_log_ray

        try:
            settings = RaySettings(address=None if ray_address == "local" else ray_address, workers=workers, shards=n_shards)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        with new_log_or_nothing(out):  # a new log that fails before its first rows is removed again
            summary = build_log_ray(prompts, models, out, cfg, settings, command=_command_line(), progress=stderr_is_tty(),
                                    device=device, threads=threads if threads is not None else 1, calibration=calibration)
    else:
        with new_log_or_nothing(out):
            summary = build_log(prompts, models, out, cfg, command=_command_line(), progress=stderr_is_tty(), device=device,
                                threads=threads, calibration=calibration)
    _finish(summary, as_json, models, out, "outcomes", lambda: (
        f"{summary.out}: {summary.n_rows_written} rows written for {summary.n_prompts_decoded} prompts "
        f"({summary.n_rows_skipped} already there) in {summary.seconds:.1f} s; lossless failures: {summary.n_lossless_failures}"))


@click.command("reprice")
@click.argument("log", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="The new log (a new or empty folder, outside every log; written whole, then renamed into place).")
@click.option("--overwrite", is_flag=True,
              help="Replace a log an earlier reprice wrote at --out (only such a log, with nothing appended since, and only "
                   "once the new one is complete).")
@click.option("--reward", type=click.Choice(REWARDS), default=None, help="Reward of the new log (default: the source's).")
@click.option("--alpha", type=float, default=0.0, show_default=True, help="Cost weight of alignment rewards.")
@click.option("--calibration", "calibration_path", type=click.Path(), default=None,
              help="Step costs to price the counts with: a log directory, a JSON cost profile, or fit:MEASURED_LOG "
                   "(that log's costs with the round and verified-token costs fitted to its wall times). Default: the source's.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def reprice(log, out, overwrite, reward, alpha, calibration_path, as_json):
    """Re-price LOG's outcomes into a new log: another reward and/or another machine's step costs.

    Greedy counts do not depend on the machine, only their prices do: the count speed-up is
    recomputed from each row's counts under --calibration (e.g. a GPU's cost profile), and the
    reward column under --reward (time_saved_count = 1 - 1/speedup_count: the share of decoding
    time saved). Nothing is decoded; the source log is not touched.

    \b
    Examples:
      bandit-log reprice LOG --out LOG-saved --reward time_saved_count
      bandit-log reprice LOG --out LOG-h200 --calibration examples/profiles/h200-smollm2-135m-fp32.json
      bandit-log reprice LOG --out LOG-fit --calibration fit:examples/data/smollm2-log
      bandit-log reprice LOG --out LOG-saved --reward time_saved_count --overwrite
    """
    from dataclasses import replace
    from pathlib import Path

    from decoding.build import reward_definition, reward_name
    from decoding.pricing import calibration_source_label, fit_calibration_from_log, load_calibration
    from decoding.reprice import reprice_log

    inputs = [("LOG", log), ("--calibration", calibration_path)]
    check_output(out, REPRICED_LOG, inputs=inputs, if_exists="overwrite", overwrite=overwrite)  # a new log, or reprice's own
    calibration, source, label = None, None, None
    if calibration_path and calibration_path.startswith("fit:"):  # fitted once; the fit's record goes in the metadata
        calibration, record = fit_calibration_from_log(calibration_path[4:])
        source = {"path": calibration_path, **record}
    elif calibration_path:
        calibration, source = load_calibration(calibration_path), {"path": calibration_path}
    if calibration_path:
        label = calibration_source_label(calibration_path)
    settings = dict(reward=reward_definition(reward, alpha) if reward else None, calibration=calibration,
                    command=_command_line(), calibration_source=source, priced_by=label)
    if REPRICED_LOG.is_one(Path(out)):  # --overwrite (checked above): the new log is written whole beside it, then swapped in
        with staged(out) as stage:
            summary = reprice_log(log, stage / "log", **settings)
            publish(stage / "log", out, replace=True)
        summary = replace(summary, out=out)
    else:
        summary = reprice_log(log, out, **settings)
    if as_json:
        emit_json(dict(summary.__dict__))
    else:
        from logging_data import RewardDefinition

        say(f"{summary.out}: {summary.n_rows} outcome rows re-priced (reward {reward_name(RewardDefinition.from_json(summary.reward))}) "
            f"in {summary.seconds:.1f} s")


@click.command("decode")
@click.argument("prompts", type=click.Path(dir_okay=False))
@prompt_file_options
@click.option("--policy", "run_path", required=True, type=click.Path(file_okay=False), help="A trained run folder.")
@click.option("--models", "models_path", required=True, type=click.Path(dir_okay=False), help="Models TOML (target + arms).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Log directory to append decisions to (created when missing; a new log that fails before its first rows "
                   "is removed again).")
@click.option("--greedy/--sample", "greedy", default=True, show_default=True, help="Take the policy's argmax (propensity 1.0) or sample with the exact propensity.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling generator.")
@click.option("--learn", is_flag=True, help="Feed outcomes to the policy's learn_one (VW) and save it into the run folder.")
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default=None, help="Use only prompts of this split.")
@click.option("--limit", type=int, default=None, help="Use only the first N prompts.")
@click.option("--reward", type=click.Choice(REWARDS), default="speedup_count", show_default=True, help="Reward definition for a new log (an existing log keeps its own).")
@click.option("--alpha", type=float, default=0.0, show_default=True, help="Cost weight of alignment rewards (new log).")
@click.option("--policy-id", default=None, help="policy_id written to the decisions (default: the run folder's name).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Override [target] device.")
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def decode(prompts, run_path, models_path, out, greedy, seed, learn, split, limit, reward, alpha, policy_id, device, threads, as_json,
           prompt_columns, prompts_format):
    """Decode prompts with the arm a policy picks; append one decisions row per prompt.

    Each prompt is featurized through the run, the policy picks an arm, assisted decoding runs
    with it and its output is checked token for token against the target's plain greedy output
    (a mismatch is counted, flagged in the row, printed on stderr, and exits with status 3; 2 is a
    usage error).

    Decisions are appended to the log at --out, created when missing; a new log that fails before
    its first decision is appended (the chosen arm cannot run) is removed again. An existing log
    is never removed, and a re-run skips the prompts it already holds.

    \b
    Example:
      bandit-log decode --policy runs/vw --models models.toml prompts.parquet --out LOG --split test --sample --seed 1
    """
    from decoding.build import reward_definition
    from decoding.loop import DecodeConfig, decode_prompts
    from decoding.models import load_models_config

    models = load_models_config(models_path)
    check_output(out, LOG, inputs=[("PROMPTS", prompts), ("--policy", run_path), *models.input_paths()],
                 if_exists="continue")  # decisions are appended to a log; nothing else is written into
    cfg = DecodeConfig(greedy=greedy, seed=seed, learn=learn, split=split, limit=limit,
                       reward=reward_definition(reward, alpha), policy_id=policy_id, prompt_columns=prompt_columns,
                       prompts_format=prompts_format)
    with new_log_or_nothing(out):  # a new log that fails before its first decision is removed again
        summary = decode_prompts(run_path, models, prompts, out, cfg, command=_command_line(), device=device, threads=threads,
                                 progress=stderr_is_tty())
    _finish(summary, as_json, models, out, "decisions", lambda: (
        f"{summary.out}: {summary.n_decisions} decisions by {summary.policy_id}; mean reward {summary.mean_reward:.4f}; "
        f"arms chosen {summary.arm_counts}; lossless failures: {summary.n_lossless_failures}"))


@click.command("calibrate")
@click.option("--models", "models_path", required=True, type=click.Path(dir_okay=False), help="Models TOML (target + arms).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The cost profile to write (a new .json file).")
@click.option("--overwrite", is_flag=True, help="Replace a cost profile at --out (never another kind of file; only once the new one is complete).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Override [target] device.")
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
@click.option("--context-len", type=click.IntRange(min=1), default=64, show_default=True,
              help="Tokens in the KV cache while a step is timed.")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed runs per step, interleaved across the target and the drafting models (median).")
@click.option("--max-spread", type=click.FloatRange(min=0, min_open=True), default=0.25, show_default=True,
              help="Re-time (then refuse) a step whose repeats vary more than this (interquartile range / median).")
@click.option("--json", "as_json", is_flag=True, help="Print the profile on stdout.")
def calibrate(models_path, out, overwrite, device, threads, context_len, repeats, max_spread, as_json):
    """Time the target's step and each arm's drafting step here; write a cost profile.

    The profile (the calibration, this machine, the library versions and the models file) prices
    the deterministic counts of any log built from the same models: `reprice --calibration` and
    `build --calibration` take it. Counts do not depend on the machine under exact greedy
    decoding, so a log built on a CPU can be priced as it would run on a GPU (--device cuda there).

    \b
    Examples:
      bandit-log calibrate --models models.toml --out here.json
      bandit-log reprice LOG --out LOG-here --calibration here.json
    """
    from decoding.calibrate import calibrate as run_calibration
    from decoding.calibrate import cost_profile
    from decoding.pricing import for_arms, write_profile
    from decoding.models import load_models_config
    from decoding.session import DecodingSession

    from pathlib import Path

    target = Path(out)
    if target.suffix.lower() != ".json":
        raise click.BadParameter(f"{target}: a cost profile is a JSON file; give a path ending in .json", param_hint="--out")
    if not target.parent.is_dir():
        raise click.BadParameter(f"{target}: the folder {target.parent} does not exist", param_hint="--out")
    models = load_models_config(models_path)
    # before any model loads: not onto a model, not inside a log; an existing profile only with --overwrite
    check_output(target, COST_PROFILE, inputs=models.input_paths(), if_exists="overwrite", overwrite=overwrite)
    session = DecodingSession(models, device=device, threads=threads)
    from decoding.calibrate import CalibrationUnstable

    try:
        cal = for_arms(run_calibration(session, context_len=context_len, repeats=repeats, max_spread=max_spread), models.arms)
    except CalibrationUnstable as exc:
        raise click.ClickException(str(exc)) from None
    record = cost_profile(cal, models=models, command=_command_line())
    with staged(target) as stage:  # written whole beside --out, then renamed into place
        publish(write_profile(stage / target.name, record), target, replace=overwrite)
    if as_json:
        emit_json(record)
    else:
        steps = ", ".join(f"{a} {s / cal.step_s:.3f}" for a, s in cal.arm_step_s.items() if s > 0) or "none"
        loop = sorted({round(cal.relative_round_cost(a), 3) for a in cal.arm_round_s} - {round(cal.relative_round_cost(), 3)})
        prefill = ", ".join(f"{a} {s / cal.step_s:.4f}" for a, s in cal.arm_prefill_token_s.items() if s > 0) or "none"
        say(f"{target}: {cal.device} step {cal.step_s * 1e3:.2f} ms; per target step: round overhead "
            f"{cal.relative_round_cost():.3f} (generate()){f', {loop[0]:.3f} (the project loop)' if loop else ''}, each verified "
            f"token {cal.relative_verify_cost():.3f}, each prompt token {cal.relative_prefill_cost():.4f} (drafting models' "
            f"own prefill: {prefill}), drafting steps: {steps}")
