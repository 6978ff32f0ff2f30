"""Timing a live session: what one forward step costs on this machine (``calibrate``).

The count model and its prices are ``decoding.pricing`` (``Calibration``, ``speedup_count``, cost
profiles); this module measures them on a live ``DecodingSession``, so it sits above the arm kinds
(each kind times its own drafting step: ``ArmKind.step_seconds`` with a ``StepTimer``):

- ``c_t``: one target step of plain greedy ``generate()`` (``plain_step_s``) and the bare forward
  step that decodes one token with a KV cache of ``context_len`` tokens (``target_step_s``);
- ``c_d``: the same for the model each arm drafts with (0 for arms that run no model);
- ``c_v``: from one pass over ``verify_block`` tokens: ``(T(verify_block) - c_t) / (verify_block - 1)``;
- ``c_r``: from a real prompt-lookup decode of a prompt that repeats itself, through ``generate()``
  and through the project's loop, timed beside plain decoding of the same prompt (``_round_overhead``);
- ``c_p`` and each drafting model's ``c_pd``: from one forward pass over ``prefill_len`` tokens on an
  empty cache: ``(T(prefill_len) - c_t) / (prefill_len - 1)``.

Each step is timed as the median of ``repeats`` runs after ``warmup`` runs, interleaved so that a
burst of load hits every step alike; ``cost_profile`` records a calibration with the machine that
measured it (``decoding.pricing.write_profile`` writes it).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Sequence

from .arms import kind_of
from .arms.base import ArmKind
from .arms.draft import Draft
from .machine import environment
from .models import ArmConfig
from .pricing import DEFAULT_DRAFT_TOKENS, Calibration, machine_label


def cost_profile(calibration: Calibration, *, models: Any = None, command: str | None = None, what: str = "") -> dict[str, Any]:
    """A cost profile: the calibration, the machine and versions that measured it, and how.

    The file ``bandit-log calibrate --out`` writes (``decoding.pricing.write_profile``) and
    ``decoding.pricing.load_calibration`` (``--calibration``) reads; ``examples/profiles/`` holds the shipped ones. ``models``: the ``ModelsConfig`` timed.
    """
    import datetime

    env = environment()
    record: dict[str, Any] = {
        "what": what or (f"step costs of {models.target.path if models is not None else 'the target'} and its arms, measured "
                         f"by `bandit-log calibrate` on {machine_label(calibration, env['hardware'])}"),
        "calibration": calibration.to_json(), **env,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }
    if models is not None:
        record["models_file"] = models.source_path
        record["models_toml"] = models.source_text
    return record


def _step_seconds(model: Any, vocab_size: int, context_len: int, repeats: int, warmup: int, sync, n_tokens: int = 1) -> float:
    """Median seconds of one forward pass over ``n_tokens`` new tokens on a cache of ``context_len``."""
    import torch

    ids = torch.arange(context_len, dtype=torch.long).remainder(max(vocab_size - 1, 1)).unsqueeze(0).to(model.device)
    nxt = ids[:, -n_tokens:]
    times = []
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        cache = out.past_key_values
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            model(input_ids=nxt, past_key_values=cache, use_cache=True)
            sync()
            dt = time.perf_counter() - t0
            cache.crop(-n_tokens)  # drop the timed tokens again
            if i >= warmup:
                times.append(dt)
    return float(statistics.median(times))


def _prefill_seconds(model: Any, vocab_size: int, n_tokens: int, repeats: int, warmup: int, sync) -> float:
    """Median seconds of one forward pass over ``n_tokens`` tokens on an empty cache (a prefill)."""
    import torch

    ids = torch.arange(n_tokens, dtype=torch.long).remainder(max(vocab_size - 1, 1)).unsqueeze(0).to(model.device)
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            model(input_ids=ids, use_cache=True)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return float(statistics.median(times))


@dataclass(frozen=True)
class StepTimer:
    """How an arm kind times its drafting step for ``calibrate`` (``ArmKind.step_seconds``)."""

    context_len: int
    repeats: int
    warmup: int
    sync: Any
    prefill_len: int = 256

    def step(self, model: Any, vocab_size: int, context_length: int | None = None) -> float:
        """Median seconds of one cached forward step of ``model`` at the calibration's context
        (capped below the model's own ``context_length``)."""
        at = min(self.context_len, (context_length or self.context_len + 1) - 1)
        return _step_seconds(model, vocab_size, at, self.repeats, self.warmup, self.sync)

    def prefill(self, model: Any, vocab_size: int, context_length: int | None = None) -> float:
        """Seconds each prompt token adds to a prefill of ``model``: one forward pass over
        ``prefill_len`` tokens on an empty cache, less one cached step, over ``prefill_len - 1``
        (capped below the model's own ``context_length``); medians of the repeats."""
        n = min(self.prefill_len, (context_length or self.prefill_len + 1) - 1)
        if n < 2:
            return 0.0
        full = _prefill_seconds(model, vocab_size, n, self.repeats, self.warmup, self.sync)
        one = self.step(model, vocab_size, context_length)
        return (full - one) / (n - 1)  # one sample may fall below 0 on a noisy clock; calibrate clips the median

    def call(self, fn: Any) -> float:
        """Median seconds of ``fn()`` after the warm-up calls."""
        times = []
        for i in range(self.warmup + self.repeats):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            if i >= self.warmup:
                times.append(time.perf_counter() - t0)
        return float(statistics.median(times))


class CalibrationUnstable(RuntimeError):
    """Step timings that kept varying more than ``max_spread`` (a busy machine): the message has the numbers."""


#: a calibration's relative spread limit (interquartile range / median of one step's repeats)
MAX_SPREAD = 0.25
#: steps faster than this (seconds) are not spread-checked: timer and scheduler jitter dominate them (tiny test
#: models take 1-10 ms); the real targets this project prices take 50-550 ms a step on a CPU
SPREAD_FLOOR_S = 0.02


def spread(samples: Sequence[float]) -> float:
    """Interquartile range over median of ``samples`` (0 for fewer than 2)."""
    if len(samples) < 2:
        return 0.0
    q = statistics.quantiles(samples, n=4, method="inclusive")
    med = statistics.median(samples)
    return float((q[2] - q[0]) / med) if med > 0 else 0.0


def _drafting_models(session: Any) -> dict[str, list[str]]:
    """Key of each drafting model -> the arms that draft with it: arms that share one model (a draft
    and the hybrid around it) get one step cost. Arms without a model of their own are their own key."""
    groups: dict[str, list[str]] = {}
    for arm in session.config.arms:
        kind = kind_of(arm)
        key = f"draft:{id(session.draft(arm.name).model)}" if isinstance(kind, Draft) else f"arm:{arm.name}"
        groups.setdefault(key, []).append(arm.name)
    return groups


def calibrate(session: Any, context_len: int = 64, repeats: int = 5, warmup: int = 2, max_spread: float | None = MAX_SPREAD,
              attempts: int = 3, on_unstable: str = "raise", prefill_len: int = 256) -> Calibration:
    """Time one target step and one drafting step per arm on this machine (``session``: a ``DecodingSession``).

    Robust to a busy machine: the steps are timed *interleaved* (each repeat times the target, the
    verification block and every drafting model once, in turn, so a burst of load hits all of them
    alike, not one arm), each cost is the median of its repeats, arms that draft with one model get
    that model's one cost, and a step whose repeats spread by more than ``max_spread`` (interquartile
    range / median) is timed ``repeats`` more times, up to ``attempts`` rounds, then raises
    ``CalibrationUnstable`` with every spread (``max_spread=None``: no check), or, with
    ``on_unstable="warn"`` (a build's own calibration: hours of decoding should not die on it), warns
    the same message and keeps the medians. The spreads are kept in ``Calibration.spread``.

    The prefill costs are timed in the same interleaved rounds: one pass of the target over
    ``prefill_len`` tokens (capped below its context), and each drafting model's own
    (``ArmKind.prefill_token_seconds``). The round overheads come last, from real decodes of a
    copying prompt: through ``generate()`` and through the project's loop (``_round_overhead``);
    each arm gets the one of the path it runs on (``ArmKind.looped``).
    """
    import torch

    if on_unstable not in ("raise", "warn"):
        raise ValueError(f"calibrate: on_unstable must be 'raise' or 'warn'; got {on_unstable!r}")
    if repeats < 1 or warmup < 0 or context_len < 1 or attempts < 1 or prefill_len < 2:
        raise ValueError(f"calibrate needs repeats >= 1, warmup >= 0, context_len >= 1, attempts >= 1, prefill_len >= 2; got "
                         f"{repeats}, {warmup}, {context_len}, {attempts}, {prefill_len}")
    target = session.target
    ctx = min(context_len, (target.context_length or context_len + 1) - 1)
    vocab = target.model.config.get_text_config().vocab_size
    block = 1 + max([a.n_draft_tokens or DEFAULT_DRAFT_TOKENS for a in session.config.arms if not kind_of(a).plain], default=0)
    block = min(block, ctx)
    once = StepTimer(ctx, 1, 0, session._sync, prefill_len=prefill_len)
    n_prefill = min(prefill_len, (target.context_length or prefill_len + 1) - 1)
    groups = _drafting_models(session)
    arms = {a.name: a for a in session.config.arms}

    def one_round() -> dict[str, float]:
        got = {"target": _step_seconds(target.model, vocab, ctx, 1, 0, session._sync)}
        if block > 1:
            got["block"] = _step_seconds(target.model, vocab, ctx, 1, 0, session._sync, n_tokens=block)
        if n_prefill > 1:
            got["prefill"] = _prefill_seconds(target.model, vocab, n_prefill, 1, 0, session._sync)
        for key, names in groups.items():
            a = arms[names[0]]
            got[key] = float(kind_of(a).step_seconds(session, a, once))
            kind = kind_of(a)
            if type(kind).prefill_token_seconds is not ArmKind.prefill_token_seconds:  # a kind whose model reads the prompt
                got[f"{key}/prefill"] = float(kind.prefill_token_seconds(session, a, once))
        return got

    for _ in range(warmup):
        one_round()
    samples: dict[str, list[float]] = {}
    for attempt in range(attempts):
        for _ in range(repeats):
            for k, v in one_round().items():
                samples.setdefault(k, []).append(v)
        spreads = {k: spread(v) for k, v in samples.items()}
        # the prefills are recorded with their spreads but not held to the limit: a second-order cost (a few % of a
        # decode) should not refuse a calibration whose step costs are steady
        noisy = {k: x for k, x in spreads.items() if max_spread is not None and x > max_spread and not k.endswith("prefill")
                 and statistics.median(samples[k]) >= SPREAD_FLOOR_S}
        if not noisy:
            break
    else:
        def label(k: str) -> str:
            fixed = {"target": "the target step", "block": f"a {block}-token verification pass",
                     "prefill": f"a {n_prefill}-token prefill of the target"}
            key, _, what = k.partition("/")
            return fixed.get(k) or ("arm(s) " + ", ".join(groups.get(key, [key])) + (" (their model's prefill)" if what else ""))

        detail = "; ".join(f"{label(k)}: median {statistics.median(samples[k]):.4f} s, spread {x:.0%} over {len(samples[k])} runs "
                           f"({min(samples[k]):.4f}-{max(samples[k]):.4f} s)" for k, x in noisy.items())
        message = (f"step timings kept varying more than {max_spread:.0%} (interquartile range / median) after "
                   f"{attempts} rounds of {repeats} interleaved repeats: {detail}. The machine is busy: calibrate "
                   f"when it is idle, or allow more spread (--max-spread)")
        if on_unstable == "raise":
            raise CalibrationUnstable(message)
        import warnings

        warnings.warn(f"{message}; the medians are kept (the spreads are in the log's calibration: reprice the log "
                      f"with a calibration from an idle machine)", RuntimeWarning, stacklevel=2)
    med = {k: float(statistics.median(v)) for k, v in samples.items()}
    c_t = med["target"]
    c_v = max(0.0, (med["block"] - c_t) / (block - 1)) if block > 1 else 0.0
    c_p = max(0.0, (med["prefill"] - c_t) / (n_prefill - 1)) if "prefill" in med else 0.0
    arm_s = {name: med[key] for key, names in groups.items() for name in names}
    arm_s = {a.name: arm_s[a.name] for a in session.config.arms}
    arm_prefill = {name: max(0.0, med[f"{key}/prefill"]) for key, names in groups.items() for name in names
                   if f"{key}/prefill" in med}
    plain_step, c_r, loop_r = _round_overhead(session, c_v, c_p, repeats=max(1, min(repeats, 3)))
    arm_round = {a.name: (loop_r if kind_of(a).looped(a) else c_r) for a in session.config.arms if not kind_of(a).plain}

    def named(k: str) -> str:
        if k in ("target", "block", "prefill"):
            return {"target": "target", "block": "verify_block", "prefill": "prefill"}[k]
        key, _, what = k.partition("/")
        return ",".join(groups.get(key, [key])) + (f" {what}" if what else "")

    spread_out = {named(k): round(spread(v), 4) for k, v in samples.items()}
    return Calibration(target_step_s=c_t, arm_step_s=arm_s, verify_token_s=c_v, verify_block=block, round_overhead_s=c_r,
                       plain_step_s=plain_step, context_len=ctx, repeats=len(samples["target"]),
                       n_threads=int(torch.get_num_threads()), device=session.device, spread=spread_out,
                       prefill_token_s=c_p, arm_prefill_token_s=arm_prefill, arm_round_s=arm_round)


#: the calibration prompt of ``_round_overhead``: text the target tends to copy, so prompt lookup finds candidates
CALIBRATION_TEXT = "Repeat the following sentence three times: " + "The quick brown fox jumps over the lazy dog near the bank of the river. " * 2


def _round_overhead(session: Any, verify_token_s: float, prefill_token_s: float, repeats: int,
                    n_new: int = 48) -> tuple[float, float, float]:
    """(seconds of one plain ``generate()`` step, ``c_r`` of ``generate()``, ``c_r`` of the project's loop).

    Real prompt-lookup decodes of ``n_new`` tokens on ``CALIBRATION_TEXT`` (which the target
    copies, so lookup finds candidates and rounds carry drafted tokens), through ``generate()`` and
    through the project's loop (``DecodingSession.looped``), timed next to plain decoding of the
    same prompt; per-call fixed costs are spread over the rounds, as in real use, and the prompt's
    prefill (``prefill_token_s`` a token) is taken out of every run first.
    """
    ids = session.encode(CALIBRATION_TEXT, 1)
    context = session.target.context_length or (len(ids) + n_new + 1)
    n_new = min(n_new, context - len(ids) - 1)
    if n_new < 2:  # a model with too short a context to time a round: no overhead measured
        return 0.0, 0.0, 0.0
    arm = ArmConfig(name="_calibration_lookup", kind="prompt_lookup", prompt_lookup_num_tokens=3)
    prefill = len(ids) * prefill_token_s
    plain = session.plain(ids, repeats=repeats, warmup=1, max_new_tokens=n_new)
    if not plain.n_new_tokens:
        return 0.0, 0.0, 0.0
    def step_of(run: Any) -> float:  # a plain decode's seconds per new token, its prompt's prefill taken out
        return max(run.wall_time_s - prefill, 0.0) / run.n_new_tokens

    def overhead(run: Any, step: float) -> float:
        if not run.target_calls:
            return 0.0
        extra = run.wall_time_s - prefill - run.target_calls * step - run.draft_tokens * verify_token_s
        return max(0.0, extra / run.target_calls)

    step = step_of(plain)
    c_r = overhead(session.assisted(ids, arm, repeats=repeats, warmup=1, max_new_tokens=n_new), step)
    n_loop = min(n_new, context - len(ids) - session.loop_block())  # the loop keeps room for a drafted block
    if n_loop < 2:  # too short a context for the loop's room: its rounds are priced as generate()'s
        return step, c_r, c_r
    looped = session.looped(ids, arm, repeats=repeats, warmup=1, max_new_tokens=n_loop)
    # fewer tokens than plain decoded: compare with plain's step on as many
    loop_step = step if n_loop == n_new else step_of(session.plain(ids, repeats=repeats, warmup=0, max_new_tokens=n_loop))
    return step, c_r, overhead(looped, loop_step)
