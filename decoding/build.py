"""Build a full-information log: every arm's outcome for every prompt, measured on real models.

For each prompt (``bandit-log build``):

1. the target's plain greedy decoding, timed (batch size 1): the reference tokens and
   ``plain_wall_time_s``;
2. for each arm, its own greedy output (batched with left padding over a small batch of prompts)
   and its alignment with the reference (``decoding.alignment``): draft and early-exit arms
   compare their own output; prompt lookup gets the exact replay of its candidates
   (``align_accept`` only; the other alignment columns stay null); ``none`` has no alignment;
3. for each arm, measured assisted decoding (``DecodingSession.assisted``) with warm-up and
   repeats: wall time, tokens/s, target and draft passes, candidates, accepted tokens, the
   wall-clock and count-based speed-ups, and the lossless check. The ``none`` arm *is* plain
   decoding, so its measurement is the plain run (speed-ups 1.0);
4. the reward under the log's ``RewardDefinition``: ``alignment`` -> ``metric - alpha *
   arm_cost`` (the ``none`` arm scores 0), ``speedup_wall`` or ``speedup_count``.

Alignment-only builds (``BuildConfig(measure=False)``, ``bandit-log build --alignment-only``):
the research's cheap log, made of independent greedy runs only (no assisted decoding, so it is
embarrassingly parallel). Per batch of prompts: the target's greedy output and each arm's own
greedy output, both batched with left padding (``DecodingSession.greedy`` / ``arm_greedy``);
the alignment columns exactly as in step 2; ``arm_cost`` from the calibration; the reward, which
must be an alignment reward (``metric - alpha * arm_cost``). ``n_new_tokens`` is the target
output's length. Where counts are exact without running assisted decoding they are filled: the
``none`` arm (``target_calls = n_new_tokens``, no draft, ``speedup_count = 1``) and prompt lookup
(the replay gives ``target_calls``, ``draft_tokens``, ``accepted_tokens`` and ``draft_calls = 0``,
and ``speedup_count`` follows from the count model). Everything measured stays null: wall times,
tokens/s, ``speedup_wall``, ``n_repeats``, ``n_threads``, ``lossless``, and every count of draft
and early-exit arms (their counts need the drafting model to see the target's prefix). The log's
metadata records ``extra.build.measure = false``; a resume must use the same mode. The
calibration is the same as a full build's (it times one short prompt-lookup ``generate()`` for
the round overhead, once per log, never per prompt). The target's output comes from a batched
greedy run, which can differ from batch-size-1 decoding only at numerical near-ties of the logits.

Rows go to the log's outcomes table one part per batch of prompts, atomically
(``logging_data.Log.append``). A build that is interrupted (an exception, ``kill -9``) is
resumed by running it again: (query_id, arm) keys already in the log are skipped, so no row is
duplicated or lost, and the resumed log keeps the metadata (calibration included) it was created
with. Prompts are all encoded before anything is decoded, so an empty or too-long prompt stops
the build before it writes anything.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from logging_data import ALIGNMENT_METRICS, LogMetadata, RewardDefinition, create_log, open_log
from logging_data.schema import REWARD_CHOICES, SPEEDUP_KINDS
from logging_data.io import check_new_log_path, creating
from logging_data.outputs import LOG, check_output
from logging_data.shards import Shard
from logging_data.prompt_table import PromptColumns, read_prompt_table

from .alignment import alignment_metrics
from .arms import is_plain, kind_of, model_free_kinds
from .machine import environment
from .pricing import PRICED_KINDS, Calibration, for_arms, own_calibration_label, speedup_count
from .models import ArmConfig, ModelsConfig



def reward_definition(reward: str = "align_accept", alpha: float = 0.0) -> RewardDefinition:
    """The ``RewardDefinition`` for a ``--reward`` choice: an alignment metric, a speed-up
    (``speedup_count``, ``speedup_wall``) or the share of plain decoding time saved
    (``time_saved_count``, ``time_saved_wall``: ``1 - 1/speed-up``)."""
    if reward in ALIGNMENT_METRICS:
        return RewardDefinition(kind="alignment", metric=reward, alpha=alpha,
                                description=f"{reward} - alpha * arm_cost (arm_cost: calibrated draft step / target step); none arm = 0")
    if reward in REWARD_CHOICES:
        if alpha:
            raise ValueError(f"--alpha applies to alignment rewards only; reward {reward!r} got alpha={alpha}")
        kind = reward.replace("time_saved", "speedup")
        desc = ("(n_new_tokens + n_prompt_tokens * prefill_cost) / (target_calls * (1 + round_cost) + draft_tokens * verify_cost + "
                "draft_calls * arm_cost + n_prompt_tokens * (prefill_cost + the drafting model's prefill_cost)), costs calibrated "
                "per machine (decoding.calibrate)" if kind == "speedup_count"
                else "plain_wall_time_s / wall_time_s (medians over repeats)")
        if reward.startswith("time_saved"):
            return RewardDefinition(kind=kind, metric="time_saved", alpha=0.0,
                                    description=f"1 - 1 / {kind}: the share of plain decoding time saved, {kind} = {desc}")
        return RewardDefinition(kind=kind, metric="", alpha=0.0, description=desc)
    raise ValueError(f"reward must be one of {', '.join(REWARD_CHOICES)}; got {reward!r}")


def reward_name(reward: RewardDefinition) -> str:
    """The ``--reward`` choice of a definition (the inverse of ``reward_definition``)."""
    if reward.kind == "alignment":
        return reward.metric
    if reward.kind in SPEEDUP_KINDS:
        return reward.kind.replace("speedup", "time_saved") if reward.metric == "time_saved" else reward.kind
    return reward.kind


@dataclass(frozen=True)
class BuildConfig:
    """Settings of one build. ``batch_size``: prompts per greedy batch and per appended part.

    ``measure``: False builds the alignment-only log (see the module docstring): greedy runs only,
    an alignment reward, ``repeats``/``warmup`` left at 1/0.
    """

    reward: RewardDefinition = field(default_factory=RewardDefinition)
    limit: int | None = None
    split: str | None = None
    repeats: int = 1
    warmup: int = 0
    max_new_tokens: int | None = None
    batch_size: int = 4
    calibration_context: int = 64
    calibration_repeats: int = 5
    measure: bool = True
    prompt_columns: PromptColumns = PromptColumns()
    prompts_format: str | None = None
    shard: Shard | None = None


@dataclass(frozen=True)
class BuildSummary:
    out: str
    n_prompts: int
    n_prompts_decoded: int
    n_rows_written: int
    n_rows_skipped: int
    n_lossless_failures: int
    seconds: float
    calibration: dict[str, Any]


# -- prompts ------------------------------------------------------------------------------------
def read_prompts(path: str | os.PathLike, split: str | None = None, limit: int | None = None,
                 columns: PromptColumns = PromptColumns(), fmt: str | None = None, seed: int = 0) -> pd.DataFrame:
    """The prompt table of ``path`` (Parquet, CSV, JSON Lines or text: ``logging_data.prompt_table``),
    filtered to ``split`` and cut to the first ``limit`` rows. A file without a split column gets
    seeded 60/20/20 splits from its ids."""
    frame = read_prompt_table(path, columns=columns, fmt=fmt, make_splits=True, seed=seed)
    if split is not None:
        counts = frame["split"].value_counts()
        frame = frame[frame["split"] == split]
        if frame.empty:
            raise ValueError(f"prompts file {path}: no prompt of split {split!r} (it has "
                             f"{', '.join(f'{k}: {v}' for k, v in counts.items()) or 'no split values'})")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1; got {limit}")
        frame = frame.head(limit)
    return frame.reset_index(drop=True)


def query_fields(row: pd.Series) -> dict[str, Any]:
    out = {"query_id": str(row["query_id"]), "prompt": row["prompt"],
           "domain": row.get("domain") if "domain" in row else None, "split": row.get("split") if "split" in row else None}
    for k, v in row.items():
        if str(k).startswith("x_"):
            out[k] = v
    return {k: (None if (not isinstance(v, str) and v is not None and pd.isna(v)) else v) for k, v in out.items()}


# -- one arm's row ------------------------------------------------------------------------------
def block_size(session: Any, arm: ArmConfig) -> int:
    """k for ``align_accept``: the arm's fixed draft length, else the drafting model's default."""
    if arm.n_draft_tokens is not None:
        return int(arm.n_draft_tokens)
    model = kind_of(arm).block_model(session, arm)
    return int(getattr(model.generation_config, "num_assistant_tokens", None) or 20)


def decode_arm(session: Any, ids: Sequence[int], arm: ArmConfig, plain: Any, *, repeats: int = 1, warmup: int = 0,
               max_new_tokens: int | None = None, name: str | None = None) -> Any:
    """One prompt decoded with ``arm`` beside its plain decoding ``plain`` (a ``DecodeOutcome``):
    plain decoding's own outcome for the plain kind, else assisted decoding checked against it."""
    if kind_of(arm).plain:
        return replace(plain, arm=name or arm.name, lossless=True)
    return session.assisted(ids, arm, repeats=repeats, warmup=warmup, reference=plain.tokens, max_new_tokens=max_new_tokens)


def _own_outputs(session: Any, models: ModelsConfig, frame: pd.DataFrame, batch: Sequence[int], done: Any,
                 max_new: int) -> dict[str, dict[int, Any]]:
    """Arm name -> {row: the arm's own greedy output} for the rows of ``batch`` not yet done, batched
    per arm; only arms that run a model of their own. Arms with the same ``own_output_key`` (a
    draft's arms of every k and its hybrids) share one greedy run of their model."""
    own: dict[str, dict[int, Any]] = {}
    shared: dict[Any, dict[int, Any]] = {}
    for arm in models.arms:
        kind = kind_of(arm)
        todo = [i for i in batch if (str(frame.at[i, "query_id"]), arm.name) not in done]
        if kind.own_output and todo:
            have = shared.setdefault(kind.own_output_key(session, arm), {})
            missing = [i for i in todo if i not in have]
            if missing:
                have.update(zip(missing, session.arm_greedy([frame.at[i, "prompt"] for i in missing], arm, max_new)))
            own[arm.name] = {i: have[i] for i in todo}
    return own


def alignment_for(session: Any, arm: ArmConfig, ids: Sequence[int], target: Sequence[int], own: Sequence[int] | None,
                  max_new_tokens: int) -> dict[str, Any]:
    """The four ``align_*`` values for one arm (None where undefined) and its own output text."""
    none = {m: None for m in ALIGNMENT_METRICS}
    kind = kind_of(arm)
    if kind.plain:
        return {**none, "arm_output": None}
    if not kind.own_output:  # a model-free drafter's acceptance replays on the target's output; others: measured only
        v = kind.replay(arm, ids, target, max_new_tokens, session.eos_ids)
        return {**none, "align_accept": None if v is None else v.rate, "arm_output": None}
    if own is None:
        raise ValueError(f"arm {arm.name!r}: its own greedy output is needed for alignment")
    return {**alignment_metrics(own, target, block_size(session, arm)), "arm_output": session.decode_text(own)}


def reward_value(reward: RewardDefinition, arm: ArmConfig, row: dict[str, Any]) -> float:
    if reward.kind == "alignment":
        if kind_of(arm).plain:
            return 0.0
        value = row.get(reward.metric)
        if value is None:
            raise ValueError(f"reward metric {reward.metric} is not defined for arm {arm.name!r} (kind {arm.kind}); "
                             f"use --reward align_accept or a measured reward")
        return float(value) - reward.alpha * float(row["arm_cost"])
    if reward.kind in ("speedup_wall", "speedup_count"):
        speedup = float(row[reward.kind])
        return 1.0 - 1.0 / speedup if reward.metric == "time_saved" else speedup
    raise ValueError(f"reward kind {reward.kind!r} cannot be computed by decoding; use an alignment metric, speedup_wall or speedup_count")


def check_reward_supported(reward: RewardDefinition, models: ModelsConfig) -> None:
    """Fail before any decoding when the reward cannot be computed for some arm."""
    if reward.kind == "custom":
        raise ValueError("reward kind 'custom' cannot be computed by decoding; use an alignment metric, speedup_wall or speedup_count")
    if reward.kind == "alignment":
        replayed = reward.metric == "align_accept"  # model-free arms have it, replayed on the target's output
        bad: dict[str, list[str]] = {}
        for a in models.arms:
            kind = kind_of(a)
            if not (kind.plain or kind.own_output or (replayed and kind.model_free)):
                bad.setdefault(kind.label, []).append(a.name)
        if bad:
            which = "; ".join(f"{label} arm(s) {', '.join(names)}" for label, names in bad.items())
            if replayed:
                raise ValueError(f"reward metric {reward.metric} is undefined for {which} (they have no output of their own "
                                 f"and their counts need decoding); use a measured reward (speedup_count, speedup_wall)")
            raise ValueError(f"reward metric {reward.metric} is undefined for {which} "
                             f"(they have no output of their own); use --reward align_accept or a measured reward")


def measured_row(arm: ArmConfig, outcome: Any, plain: Any, calibration: Calibration | None,
                 prompt_tokens: int | None = None) -> dict[str, Any]:
    """The measured-assisted-decoding columns of one outcome (``DecodeOutcome``s of the arm and of plain decoding).

    ``speedup_count`` is priced by ``calibration`` (``Calibration.speedup``; None: every cost 0, the
    count speed-up is target calls alone) for a prompt of ``prompt_tokens`` tokens (its prefill).
    """
    cal = calibration if calibration is not None else Calibration(target_step_s=1.0)
    return {
        "arm_cost": float(cal.relative_costs().get(arm.name, 0.0)),
        "n_new_tokens": outcome.n_new_tokens, "target_calls": outcome.target_calls, "draft_calls": outcome.draft_calls,
        "draft_tokens": outcome.draft_tokens, "accepted_tokens": outcome.accepted_tokens,
        "wall_time_s": outcome.wall_time_s, "plain_wall_time_s": plain.wall_time_s,
        "tokens_per_s": outcome.tokens_per_s, "speedup_wall": plain.wall_time_s / outcome.wall_time_s,
        "speedup_count": cal.speedup(arm.name, kind_of(arm).plain, outcome.n_new_tokens, outcome.target_calls,
                                     outcome.draft_calls, outcome.draft_tokens, prompt_tokens),
        "n_repeats": outcome.n_repeats, "n_threads": outcome.n_threads, "lossless": outcome.lossless,
        "token_match_rate": match_rate(outcome),
    }


def match_rate(outcome: Any) -> float | None:
    """The ``token_match_rate`` column of an outcome: 1.0 when lossless, None when unchecked."""
    if outcome.lossless is None:
        return None
    return 1.0 if outcome.lossless else float(outcome.token_match_rate if outcome.token_match_rate is not None else 0.0)


def lossless_report(log: Any, table: str = "outcomes") -> dict[str, Any]:
    """What a log says of its lossless checks: the assisted runs checked (plain decoding excluded),
    how many differ from plain greedy, and their mean ``token_match_rate``."""
    if not log.has(table) or log.n_rows(table) == 0:
        return {"n_checked": 0, "n_differ": 0, "token_match_rate": None}
    frame = log.read(table, ["arm", "lossless", "token_match_rate"])
    plain = {a.name for a in log.metadata.arms if is_plain(a.kind)}
    rows = frame[frame["lossless"].notna() & ~frame["arm"].astype(str).isin(plain)]
    rate = rows["token_match_rate"].dropna()
    return {"n_checked": int(len(rows)), "n_differ": int((rows["lossless"] == False).sum()),  # noqa: E712 (nullable)
            "token_match_rate": float(rate.mean()) if len(rate) else None}


# -- the build ----------------------------------------------------------------------------------
def log_metadata(models: ModelsConfig, session: Any, calibration: Calibration, reward: RewardDefinition,
                 command: str | None, build: dict[str, Any], measured_here: bool = False) -> LogMetadata:
    """The metadata a new log records: arms (with their relative costs), reward, calibration, the
    command, the models file, this machine (``environment``) and ``build`` (how the rows were made).

    A reward the step costs price records which costs those are (``RewardDefinition.priced_by``):
    the one given, else this build's own calibration (``measured_here``) or the costs passed in."""
    arms = models.to_log_arms(costs=calibration.relative_costs(), n_params_m=session.n_params_m())
    env = environment()
    if reward.kind in PRICED_KINDS and not reward.priced_by:
        label = (own_calibration_label(calibration, env["hardware"]) if measured_here
                 else f"step costs given to the build (measured on {calibration.device})")
        reward = replace(reward, priced_by=label)
    extra = {
        **env, "calibration": calibration.to_json(), "command": command,
        "models_file": models.source_path, "models_toml": models.source_text,
        "build": {**build, "device": session.device, "linear": getattr(session, "linear", "default"),
                  "n_target_params_m": session.target.n_params / 1e6},
    }
    return LogMetadata(arms=arms, reward=reward, extra=extra)


def build_settings(cfg: BuildConfig, models: ModelsConfig) -> dict[str, Any]:
    """``extra["build"]`` of a log made by ``build_log`` with ``cfg``."""
    return {"measure": cfg.measure, "repeats": cfg.repeats if cfg.measure else None,
            "warmup": cfg.warmup if cfg.measure else None, "max_new_tokens": cfg.max_new_tokens or models.target.max_new_tokens,
            "batch_size": cfg.batch_size, **({"shards": cfg.shard.count} if cfg.shard is not None else {})}


def prepare_log(out: str | os.PathLike, models: ModelsConfig, session: Any, config: BuildConfig, command: str | None = None,
                calibration: Calibration | None = None, extra_build: dict[str, Any] | None = None) -> Any:
    """The one-time step of a build: calibrate on this machine and create the log at ``out``.

    Safe to call from many processes at once (shard writers, Ray workers): creation is serialized
    by a lock in ``out``; the first caller calibrates and creates, the others open what it made
    (and check that its arms, reward and mode match). ``calibration``: use these step costs
    instead of calibrating now. ``extra_build``: recorded under ``extra["build"]`` beside the
    settings (e.g. how a distributed build was run).
    """
    out = Path(out)
    with creating(out):
        if (out / "_log.json").exists():
            log = open_log(out)
            check_existing(log, models, config.reward, config.measure)
            return log
        measured_here = calibration is None
        if calibration is None:
            from .calibrate import calibrate

            calibration = calibrate(session, context_len=config.calibration_context, repeats=config.calibration_repeats,
                                    on_unstable="warn")
        else:
            calibration = for_arms(calibration, models.arms)
        build = {**build_settings(config, models), **(extra_build or {})}
        return create_log(out, log_metadata(models, session, calibration, config.reward, command, build, measured_here))


def check_existing(log: Any, models: ModelsConfig, reward: RewardDefinition, measure: bool = True) -> None:
    have = [(a.name, a.kind) for a in log.metadata.arms]
    want = [(a.name, a.kind) for a in models.arms]
    if have != want:
        raise ValueError(f"{log.root}: the existing log's arms {have} differ from the models file's {want}; build into a new --out")
    if not log.metadata.reward.same_definition(reward):
        raise ValueError(f"{log.root}: the existing log's reward {log.metadata.reward.to_json()} differs from the requested "
                         f"{reward.to_json()}; build into a new --out")
    had = bool(log.metadata.extra.get("build", {}).get("measure", True))
    if had != measure:
        mode = {True: "a measured build", False: "an alignment-only build"}
        raise ValueError(f"{log.root}: the existing log is {mode[had]}; this one is {mode[measure]} "
                         f"({'drop' if had else 'add'} --alignment-only to resume it, or build into a new --out)")


def build_log(
    prompts: str | os.PathLike | pd.DataFrame,
    models: ModelsConfig,
    out: str | os.PathLike,
    config: BuildConfig = BuildConfig(),
    session: Any = None,
    command: str | None = None,
    progress: bool = True,
    device: str | None = None,
    threads: int | None = None,
    calibration: Calibration | None = None,
    extra_build: dict[str, Any] | None = None,
) -> BuildSummary:
    """Build (or resume) the full-information log at ``out``; see the module docstring.

    ``calibration``: the step costs of the count model for a new log (default: calibrate now).
    Pass another log's calibration to compare count-based speed-ups with it on the same costs.
    ``config.shard``: build only the prompts of that shard (``logging_data.shards``); processes
    building different shards of one count into the same ``out`` run side by side, and the
    first of them to start calibrates and creates the log (``prepare_log``).
    """
    t0 = time.perf_counter()
    if config.repeats < 1 or config.warmup < 0 or config.batch_size < 1:
        raise ValueError(f"repeats >= 1, warmup >= 0 and batch_size >= 1 are required; got {config.repeats}, {config.warmup}, {config.batch_size}")
    check_reward_supported(config.reward, models)
    if not config.measure:
        check_alignment_only(config, models)
    if isinstance(prompts, pd.DataFrame):  # rows already read (a Ray worker's shard)
        frame = prompts.reset_index(drop=True)
    else:
        frame = read_prompts(prompts, config.split, config.limit, config.prompt_columns, config.prompts_format)
    if config.shard is not None:
        frame = frame[config.shard.mask(frame["query_id"].astype(str))].reset_index(drop=True)
    arm_names = models.arm_names
    out = Path(out)
    check_output(out, LOG, if_exists="continue",  # a log (resumed) or new; never inside a log or around an input
                 inputs=[("PROMPTS", None if isinstance(prompts, pd.DataFrame) else prompts), *models.input_paths()])
    who = command or "build_log"
    with ExitStack() as held:
        existing = None
        if (out / "_log.json").exists():
            existing = open_log(out)
            check_existing(existing, models, config.reward, config.measure)
            held.enter_context(existing.writer(who, config.shard))  # a second writer is refused before any work
        else:
            check_new_log_path(out)  # before any model loads
        done = existing.keys("outcomes") if existing is not None else set()
        pending = [i for i, q in enumerate(frame["query_id"].astype(str)) if any((q, a) not in done for a in arm_names)]
        n_skipped = sum(1 for q in frame["query_id"].astype(str) for a in arm_names if (q, a) in done)
        if not pending:
            cal = existing.metadata.extra.get("calibration", {}) if existing is not None else {}
            return BuildSummary(str(out), len(frame), 0, 0, n_skipped, 0, time.perf_counter() - t0, dict(cal))

        if session is None:
            from .session import DecodingSession

            session = DecodingSession(models, device=device, threads=threads)
        max_new = config.max_new_tokens or models.target.max_new_tokens
        # encode everything first: a bad prompt stops the build before anything is decoded or written
        encoded = {i: session.encode(frame.at[i, "prompt"], max_new) for i in pending}
        if not config.measure:  # batches of similar lengths waste little on left padding (nothing is timed here)
            pending = length_sorted_windows(pending, {i: len(encoded[i]) for i in pending}, config.batch_size)

        if existing is None:
            log = prepare_log(out, models, session, config, command, calibration, extra_build)
            held.enter_context(log.writer(who, config.shard))
            done = log.keys("outcomes")  # another build may have created it and written since
        else:
            log = existing
        calibration = Calibration.from_json(log.metadata.extra["calibration"])
        costs = calibration.relative_costs()

        from tqdm import tqdm

        n_rows = n_fail = 0
        bar = tqdm(total=len(pending), desc="build", unit="prompt", file=sys.stderr, disable=not progress)
        try:
            for start in range(0, len(pending), config.batch_size):
                batch = pending[start:start + config.batch_size]
                if config.measure:
                    rows, fails = _build_batch(session, models, frame, batch, encoded, done, calibration, config, max_new)
                else:
                    rows, fails = _alignment_batch(session, models, frame, batch, encoded, done, costs, calibration, config, max_new), 0
                if rows:
                    log.append("outcomes", pd.DataFrame(rows))
                n_rows += len(rows)
                n_fail += fails
                bar.update(len(batch))
        finally:
            bar.close()
        if n_fail:
            print(f"LOSSLESS CHECK FAILED: {n_fail} (prompt, arm) outcome(s) differ from the target's plain greedy output; "
                  f"see rows with lossless = false in {out}/outcomes", file=sys.stderr)
        return BuildSummary(str(out), len(frame), len(pending), n_rows, n_skipped, n_fail, time.perf_counter() - t0, calibration.to_json())


def _build_batch(session, models, frame, batch, encoded, done, calibration: Calibration, cfg: BuildConfig, max_new: int):
    plains = {i: session.plain(encoded[i], repeats=cfg.repeats, warmup=cfg.warmup, max_new_tokens=max_new) for i in batch}
    own = _own_outputs(session, models, frame, batch, done, max_new)
    rows, fails = [], 0
    for i in batch:
        q = query_fields(frame.loc[i])
        plain = plains[i]
        target_text = session.decode_text(plain.tokens)
        for arm in models.arms:
            if (q["query_id"], arm.name) in done:
                continue
            outcome = decode_arm(session, encoded[i], arm, plain, repeats=cfg.repeats, warmup=cfg.warmup, max_new_tokens=max_new)
            row = {**q, "arm": arm.name, "n_prompt_tokens": len(encoded[i])}
            row.update(measured_row(arm, outcome, plain, calibration, len(encoded[i])))
            row.update(alignment_for(session, arm, encoded[i], plain.tokens, own.get(arm.name, {}).get(i), max_new))
            row["target_output"] = target_text
            row["reward"] = reward_value(cfg.reward, arm, row)
            fails += outcome.lossless is False
            rows.append(row)
    return rows, fails


#: batches per window that ``length_sorted_windows`` sorts by length
SORT_WINDOW_BATCHES = 8


def length_sorted_windows(pending: Sequence[int], lengths: dict[int, int], batch_size: int) -> list[int]:
    """``pending`` in windows of ``SORT_WINDOW_BATCHES * batch_size`` prompts, each sorted by length.

    Batches of similar lengths waste little on left padding (a batch's prefill costs its longest
    prompt times its rows), and windows keep the prompts file's order at large: a build stopped
    early (or a shard) holds a prefix of the file with its mix of domains and splits, not only its
    shortest prompts (a 1.5B target's prefill is most of a replay build's time on a CPU)."""
    window = max(1, SORT_WINDOW_BATCHES * batch_size)
    out: list[int] = []
    for start in range(0, len(pending), window):
        out += sorted(pending[start:start + window], key=lambda i: (lengths[i], i))
    return out


def check_alignment_only(cfg: BuildConfig, models: ModelsConfig | None = None) -> None:
    """Fail before any work when an alignment-only build is asked for something it cannot give.

    The reward must be an alignment reward, or ``speedup_count`` when every arm's counts replay
    exactly from the target's greedy output (model-free kinds, and model drafts that decode
    through the project's loop: ``loop = true`` draft arms and ``lookup_draft``).
    """
    if cfg.reward.kind == "speedup_count" and models is not None:
        drafting = [a.name for a in models.arms if not kind_of(a).replays(a)]
        if drafting:
            raise ValueError(f"an alignment-only build can price speedup_count only when every arm's counts replay "
                             f"(model-free kinds {', '.join(model_free_kinds())}, or a draft arm with `loop = true`); arm(s) "
                             f"{', '.join(drafting)} run a drafting model whose counts need assisted decoding (drop "
                             f"--alignment-only, set `loop = true` on the draft arm, or use an align_* reward)")
    elif cfg.reward.kind != "alignment":
        raise ValueError(f"an alignment-only build needs an alignment reward ({', '.join(ALIGNMENT_METRICS)}), or "
                         f"speedup_count with model-free arms only; got reward kind {cfg.reward.kind!r}, which needs "
                         f"measured assisted decoding (drop --alignment-only)")
    if cfg.repeats != 1 or cfg.warmup != 0:
        raise ValueError(f"an alignment-only build times nothing, so --repeats/--warmup do not apply; "
                         f"got repeats={cfg.repeats}, warmup={cfg.warmup} (leave them at 1 and 0)")


def exact_counts(arm: ArmConfig, ids: Sequence[int], target: Sequence[int], calibration: Calibration, max_new: int,
                 eos: Any, session: Any = None) -> dict[str, Any]:
    """Counts (and ``speedup_count``) that are exact without assisted decoding, replayed on the
    target's greedy output ``target``: model-free kinds (plain decoding, prompt lookup) and, given
    the ``session`` that holds its draft, a model draft decoded through the project's loop
    (``ArmKind.replay_counts``: one forward pass of the draft, ``decoding.draft_replay``).

    Other arms get nulls (their counts depend on what the drafting model proposes given the
    target's prefix in ``generate()``). ``n_new_tokens`` is the target output's length for every arm.
    """
    n = len(target)
    kind = kind_of(arm)
    if session is not None:
        counts = kind.replay_counts(session, arm, ids, target, max_new)
    else:
        counts = (kind.replay(arm, ids, target, max_new, eos), 0) if kind.model_free else None
    if counts is None or counts[0] is None:
        return {"n_new_tokens": n, "target_calls": None, "draft_calls": None, "draft_tokens": None, "accepted_tokens": None,
                "speedup_count": None}
    v, draft_calls = counts
    sc = 1.0 if kind.plain else calibration.speedup(arm.name, False, n, v.target_calls, draft_calls, v.proposed, len(ids))
    return {"n_new_tokens": n, "target_calls": v.target_calls, "draft_calls": int(draft_calls), "draft_tokens": v.proposed,
            "accepted_tokens": v.accepted, "speedup_count": sc}


def _alignment_batch(session, models, frame, batch, encoded, done, costs, calibration: Calibration, cfg: BuildConfig,
                     max_new: int) -> list[dict[str, Any]]:
    """Alignment-only rows of one batch: batched greedy runs of the target and of each model arm, no assisted decoding."""
    targets = dict(zip(batch, session.greedy([encoded[i] for i in batch], "target", max_new)))
    own = _own_outputs(session, models, frame, batch, done, max_new)
    rows = []
    for i in batch:
        q = query_fields(frame.loc[i])
        target = targets[i]
        target_text = session.decode_text(target)
        for arm in models.arms:
            if (q["query_id"], arm.name) in done:
                continue
            row = {**q, "arm": arm.name, "arm_cost": float(costs.get(arm.name, 0.0)), "n_prompt_tokens": len(encoded[i])}
            row.update(exact_counts(arm, encoded[i], target, calibration, max_new, session.eos_ids, session))
            row.update(alignment_for(session, arm, encoded[i], target, own.get(arm.name, {}).get(i), max_new))
            row["target_output"] = target_text
            row["reward"] = reward_value(cfg.reward, arm, row)
            rows.append(row)
    return rows


def summary_json(summary: BuildSummary) -> dict[str, Any]:
    return json.loads(json.dumps(summary.__dict__, default=str))


def measure_pairs(session: Any, frame: pd.DataFrame, arms_by_prompt: dict[str, Sequence[str]], calibration: Calibration,
                  *, repeats: int = 1, warmup: int = 0, max_new_tokens: int | None = None, progress: bool = False,
                  warm_arms: bool = True) -> pd.DataFrame:
    """Live measurements of chosen (prompt, arm) pairs only: what a benchmark needs when measuring
    every arm of every prompt would cost too much.

    ``frame``: prompts (query_id, prompt, domain?); ``arms_by_prompt``: query_id -> arm names to
    measure (plain decoding is always measured, timed beside them). Returns one row per measured
    (prompt, arm) with the outcomes table's measured columns (``measured_row``: counts, wall
    times, ``speedup_wall``, ``speedup_count`` priced with ``calibration``, ``lossless`` against
    plain greedy) and the target's greedy tokens as ``target_tokens`` (a tuple). ``warm_arms=False``
    skips the untimed first run of each arm (when only the counts matter: they do not depend on it).
    """
    from tqdm import tqdm

    max_new = max_new_tokens or session.max_new_tokens
    rows = []
    if len(frame) and warmup == 0 and warm_arms:  # one untimed run of each arm first: one-time costs are not decoding time
        ids = session.encode(frame["prompt"].iloc[0], max_new)
        for name in dict.fromkeys(a for arms in arms_by_prompt.values() for a in arms if a in session.config.arm_names):
            session.assisted(ids, session.arm(name), max_new_tokens=max_new)
        session.plain(ids, max_new_tokens=max_new)
    for _, prompt in tqdm(list(frame.iterrows()), desc="measure", unit="prompt", file=sys.stderr, disable=not progress):
        qid = str(prompt["query_id"])
        ids = session.encode(prompt["prompt"], max_new)
        plain = session.plain(ids, repeats=repeats, warmup=warmup, max_new_tokens=max_new)
        for name in dict.fromkeys(["plain", *arms_by_prompt.get(qid, ())]):
            if name != "plain" and name not in session.config.arm_names:
                raise ValueError(f"measure_pairs: arm {name!r} (prompt {qid}) is not in the models file; its arms are "
                                 f"{', '.join(session.config.arm_names)}")
            arm = session.arm(name) if name in session.config.arm_names else session.arm(None)  # "plain" may not be an arm
            outcome = decode_arm(session, ids, arm, plain, repeats=repeats, warmup=warmup, max_new_tokens=max_new, name=name)
            row = {"query_id": qid, "domain": prompt.get("domain"), "arm": name,
                   "n_prompt_tokens": len(ids), **measured_row(arm, outcome, plain, calibration, len(ids)),
                   "target_tokens": tuple(plain.tokens)}
            rows.append(row)
    return pd.DataFrame(rows)
