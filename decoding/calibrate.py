"""Per-machine calibration of what one forward step costs, and the count-based speed-up model.

Wall time on a shared machine is noisy; the counts of assisted decoding are not (greedy decoding
is deterministic). So a log keeps both, plus what one step costs *on this machine*:

- ``c_t``: seconds of one target step of plain greedy ``generate()`` (``plain_step_s``, from the
  same run that gives ``c_r``), next to the bare forward step that decodes one token with a KV
  cache of ``context_len`` tokens (``target_step_s``); the count model's unit is the former;
- ``c_d``: the same for the model that drafts for an arm (a draft model, or the target cut to
  its first ``assistant_early_exit`` layers); 0 for prompt lookup and plain decoding, whose
  drafting runs no model;
- ``c_v``: the extra seconds each additional token adds to a target pass, from one pass over
  ``verify_block`` tokens: ``c_v = (T(verify_block) - c_t) / (verify_block - 1)`` (clipped at
  0). A verification pass over k drafted tokens costs ``c_t + k * c_v``: nearly free while a step
  is memory-bound (GPUs), a real cost where compute dominates (small models on CPUs);
- ``c_r``: the extra seconds one *round* of assisted decoding costs beyond a plain decoding
  step (transformers' candidate generation and verification bookkeeping), from a real
  prompt-lookup ``generate()`` on a prompt that repeats itself, timed beside plain decoding of
  the same prompt: ``c_r = (T_assisted - rounds * T_plain / n - draft_tokens * c_v) / rounds``
  (clipped at 0). It is paid once per target call of every assisted arm, never by plain decoding.

- ``c_r`` per arm (``arm_round_s``): the round overhead of the code path the arm runs on live,
  ``generate()``'s (above) or the project's own loop's (``decoding.specloop``: the same timing
  with prompt lookup run through the loop), so an arm is charged the bookkeeping it really pays;
- ``c_p``: the seconds each prompt token adds to the target's prefill (``prefill_token_s``), from
  one forward pass over ``prefill_len`` tokens on an empty cache: ``(T(prefill_len) - c_t) /
  (prefill_len - 1)``; ``c_pd`` the same for the model an arm drafts with (``arm_prefill_token_s``;
  0 for arms that run no model of their own). Every arm pays the target's prefill, and an arm with
  a draft model also pays the draft's: on long prompts this dilutes every speed-up, and the
  draft's share can turn a winning draft into a loss (the 1.5B target measured it: without it the
  count model read the wall clock 10-17% too fast).

The count model, for a prompt of ``P`` tokens (``n_prompt_tokens``; 0 for logs that predate it)::

    plain_cost    = n_new_tokens * c_t + P * c_p
    assisted_cost = target_calls * (c_t + c_r) + draft_tokens * c_v + draft_calls * c_d + P * (c_p + c_pd)
    speedup_count = plain_cost / assisted_cost

Every count in it is deterministic under greedy decoding, so the speed-up it gives is
reproducible on the machine the costs were calibrated on; the measured ``speedup_wall`` sits next
to it in the log. Each step is timed as the median of ``repeats`` runs after ``warmup`` runs.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

#: transformers' default number of draft tokens per block (``num_assistant_tokens``) when an arm fixes none
DEFAULT_DRAFT_TOKENS = 20


@dataclass(frozen=True)
class Calibration:
    """Measured step costs (seconds). ``arm_step_s``: arm name -> one drafting step (0: no model)."""

    target_step_s: float
    arm_step_s: Mapping[str, float] = field(default_factory=dict)
    verify_token_s: float = 0.0
    verify_block: int = 1
    round_overhead_s: float = 0.0
    plain_step_s: float = 0.0
    context_len: int = 64
    repeats: int = 5
    n_threads: int = 1
    device: str = "cpu"
    #: what was timed -> interquartile range / median of its repeats (``calibrate``); empty for older profiles
    spread: Mapping[str, float] = field(default_factory=dict)
    #: seconds each prompt token adds to the target's prefill (0: not measured, an older profile: no prefill priced)
    prefill_token_s: float = 0.0
    #: arm name -> seconds each prompt token adds to the prefill of the model the arm drafts with (absent: 0)
    arm_prefill_token_s: Mapping[str, float] = field(default_factory=dict)
    #: arm name -> the round overhead of the code path the arm runs on (absent: ``round_overhead_s``)
    arm_round_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def step_s(self) -> float:
        """The unit of the count model: a plain ``generate()`` step when measured, else one forward step."""
        return self.plain_step_s if self.plain_step_s > 0 else self.target_step_s

    def relative_costs(self) -> dict[str, float]:
        """Arm name -> c_d / c_t (the ``arm_cost`` column and ``Arm.cost``)."""
        return {a: (s / self.step_s if self.step_s > 0 else 0.0) for a, s in self.arm_step_s.items()}

    def relative_round_cost(self, arm: str | None = None) -> float:
        """c_r / c_t: what one assisted round of ``arm`` (its own code path's overhead when measured,
        else ``generate()``'s) costs beyond a plain step, in target steps."""
        c_r = self.arm_round_s.get(arm, self.round_overhead_s) if arm is not None else self.round_overhead_s
        return c_r / self.step_s if self.step_s > 0 else 0.0

    def relative_prefill_cost(self) -> float:
        """c_p / c_t: what one prompt token adds to the target's prefill, in target steps (every arm pays it)."""
        return self.prefill_token_s / self.step_s if self.step_s > 0 else 0.0

    def speedup(self, arm: str, plain: bool, n_new_tokens: int, target_calls: int, draft_calls: int, draft_tokens: int,
                prompt_tokens: int | None = None) -> float:
        """The count speed-up of one outcome of ``arm`` (``plain``: the arm is plain decoding, which
        pays no round) priced by these costs: ``speedup_count`` with this arm's costs. ``prompt_tokens``
        (None: not recorded) prices the prefill. 1.0 for an outcome with no new tokens."""
        if not n_new_tokens:
            return 1.0
        costs = self.relative_costs()
        # the drafting model reads the prompt in its first call: an arm that never called it (a hybrid whose lookup
        # always matched) paid no draft prefill
        own_prefill = (float(self.arm_prefill_token_s.get(arm, 0.0)) / self.step_s
                       if self.step_s > 0 and not plain and draft_calls else 0.0)
        return speedup_count(int(n_new_tokens), int(target_calls), int(draft_calls), costs.get(arm, 0.0), int(draft_tokens),
                             self.relative_verify_cost(), 0.0 if plain else self.relative_round_cost(arm),
                             int(prompt_tokens or 0), self.relative_prefill_cost(), own_prefill)

    def relative_verify_cost(self) -> float:
        """c_v / c_t: what one drafted token adds to a verification pass, in target steps."""
        return self.verify_token_s / self.step_s if self.step_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("arm_step_s", "spread", "arm_prefill_token_s", "arm_round_s"):
            d[key] = dict(getattr(self, key))
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Calibration":
        """A calibration record checked whole (``check_record``): every cost present, a finite number
        of seconds in range; every problem named at once."""
        check_record(d)
        return cls(**{k: d[k] for k in _RECORD_KEYS if k in d})


_RECORD_KEYS = ("target_step_s", "arm_step_s", "verify_token_s", "verify_block", "round_overhead_s", "plain_step_s",
                "context_len", "repeats", "n_threads", "device", "spread", "prefill_token_s", "arm_prefill_token_s", "arm_round_s")
#: the costs a calibration record must have: each is a price of the count model, and a missing one read as 0 inflates
#: every speed-up it prices
REQUIRED_COSTS = ("target_step_s", "arm_step_s", "verify_token_s", "round_overhead_s", "plain_step_s")
#: no step of any model on any machine takes this long (seconds): a larger value is a unit or typing error
MAX_STEP_S = 3600.0


def _record_fields() -> tuple[Any, ...]:
    """The calibration record's schema (``logging_data.records``): each cost a finite number of seconds in
    [0, ``MAX_STEP_S``] (the target's step > 0), each count an integer >= 1 (1 when absent)."""
    from logging_data.records import integer, mapping, number, text

    def seconds(name: str, positive: bool = False) -> Any:
        return number(name, 0.0, MAX_STEP_S, lo_open=positive, unit="seconds")

    return (seconds("target_step_s", positive=True),
            mapping("arm_step_s", "an object of arm name -> seconds", each=seconds("arm_step_s")),
            seconds("verify_token_s"), seconds("round_overhead_s"), seconds("plain_step_s"),
            *(integer(k, 1, required=False) for k in ("verify_block", "context_len", "repeats", "n_threads")),
            text("device", required=False), mapping("spread", required=False),
            # added with the prefill and per-path round costs: optional (an older profile prices neither)
            number("prefill_token_s", 0.0, MAX_STEP_S, unit="seconds", required=False),
            mapping("arm_prefill_token_s", "an object of arm name -> seconds", each=seconds("arm_prefill_token_s"), required=False),
            mapping("arm_round_s", "an object of arm name -> seconds", each=seconds("arm_round_s"), required=False))


def check_record(d: Any) -> None:
    """Raise ``ValueError`` (``logging_data.records.RecordError``) naming every field of calibration
    record ``d`` that cannot price a log: missing costs, non-numbers, NaN or infinite, negative,
    absurdly large (``MAX_STEP_S``), a target step that is not > 0."""
    from logging_data.records import check_record as check

    if not isinstance(d, Mapping):
        raise ValueError(f"a calibration record must be a JSON object; found {type(d).__name__}")
    check(d, _record_fields(), missing_hint="an older record: re-measure with `bandit-log calibrate`")


def for_arms(calibration: Calibration, arms: Any) -> Calibration:
    """``calibration`` keyed by the arms of a models file (``ArmConfig``s): model-free arms (plain,
    prompt lookup) cost 0; an arm that runs a model must have its drafting step in the calibration."""
    from dataclasses import replace

    steps: dict[str, float] = {}
    from .arms import kind_of

    prefill: dict[str, float] = {}
    rounds: dict[str, float] = {}
    for arm in arms:
        if kind_of(arm).model_free:
            steps[arm.name] = 0.0
        elif arm.name in calibration.arm_step_s:
            steps[arm.name] = float(calibration.arm_step_s[arm.name])
        else:
            raise ValueError(f"the calibration has no drafting step for arm {arm.name!r} (kind {arm.kind}); it has "
                             f"{', '.join(sorted(calibration.arm_step_s)) or 'none'}: calibrate on this models file instead")
        if arm.name in calibration.arm_prefill_token_s:
            prefill[arm.name] = float(calibration.arm_prefill_token_s[arm.name])
        if arm.name in calibration.arm_round_s:
            rounds[arm.name] = float(calibration.arm_round_s[arm.name])
    return replace(calibration, arm_step_s=steps, arm_prefill_token_s=prefill, arm_round_s=rounds)


def fit_calibration(outcomes: Any, base: Calibration, kinds: Mapping[str, str]) -> tuple[Calibration, dict[str, Any]]:
    """Fit the round overhead ``c_r`` and the verified-token cost ``c_v`` to measured wall times.

    ``outcomes``: rows of a *measured* log (wall times and counts); ``kinds``: arm name -> kind.
    On every prompt-lookup row, in units of that prompt's plain step (``plain_wall_time_s /
    n_new_tokens``), the count model says ``wall / step - target_calls = target_calls * r +
    draft_tokens * v``; ``r`` and ``v`` are its non-negative least-squares fit (scipy's
    ``nnls``) over all rows. The calibration's own ``c_r`` comes from one copying prompt timed
    once, which is noisy and load-sensitive; the fit uses every measured assisted run. Returns
    ``base`` with ``round_overhead_s = r * step_s`` and ``verify_token_s = v * step_s``, and a
    record of the fit (rows used, r, v, median relative error before and after).
    """
    import numpy as np
    from dataclasses import replace
    from scipy.optimize import nnls

    from .arms import KINDS

    drafts_free = {k for k, v in KINDS.items() if v.model_free and not v.plain}  # prompt lookup: no model, real rounds
    rows = outcomes[[kinds.get(str(a)) in drafts_free for a in outcomes["arm"]]]
    cols = ["wall_time_s", "plain_wall_time_s", "n_new_tokens", "target_calls", "draft_tokens"]
    rows = rows.dropna(subset=cols)
    rows = rows[(rows["n_new_tokens"] > 0) & (rows["wall_time_s"] > 0)]
    if len(rows) < 2:
        raise ValueError(f"fitting a calibration needs measured prompt-lookup rows (wall times and counts); found {len(rows)}")
    step = rows["plain_wall_time_s"].to_numpy(float) / rows["n_new_tokens"].to_numpy(float)
    calls, drafted = rows["target_calls"].to_numpy(float), rows["draft_tokens"].to_numpy(float)
    y = rows["wall_time_s"].to_numpy(float) / step - calls
    (r, v), _ = nnls(np.column_stack([calls, drafted]), y)
    wall = rows["wall_time_s"].to_numpy(float)

    def err(rr: float, vv: float) -> float:
        return float(np.median(np.abs((calls * (1 + rr) + drafted * vv) * step / wall - 1)))

    fitted = replace(base, round_overhead_s=float(r) * base.step_s, verify_token_s=float(v) * base.step_s)
    record = {"n_rows": int(len(rows)), "round_cost": float(r), "verify_cost": float(v),
              "median_rel_error_before": err(base.relative_round_cost(), base.relative_verify_cost()),
              "median_rel_error_after": err(float(r), float(v))}
    return fitted, record


def fit_calibration_from_log(path: str | os.PathLike[str]) -> tuple[Calibration, dict[str, Any]]:
    """``fit_calibration`` on the measured log at ``path``, from its own calibration: (fitted, record)."""
    from logging_data import open_log

    log = open_log(path)
    return fit_calibration(log.read("outcomes"), load_calibration(path), {a.name: a.kind for a in log.metadata.arms})


def load_calibration(path: str | os.PathLike[str]) -> Calibration:
    """The calibration (cost profile) stored at ``path``: a log directory (its metadata's
    ``extra.calibration``), a JSON calibration record, or a JSON cost profile with a
    ``calibration`` key (``../shared/profiles/*.json``); ``fit:LOG``: the calibration of the
    measured log LOG with ``c_r`` and ``c_v`` fitted to its wall times (``fit_calibration``).
    Errors name the file and what was found."""
    import json
    from pathlib import Path

    if str(path).startswith("fit:"):
        return fit_calibration_from_log(str(path)[4:])[0]
    p = Path(path)
    if p.is_dir():
        meta = p / "_log.json"
        if not meta.exists():
            raise ValueError(f"calibration {p}: a directory, but not a log (no _log.json); give a log or a JSON cost profile")
        from logging_data import open_log

        record = open_log(p).metadata.extra.get("calibration")
        if not record:
            raise ValueError(f"calibration {p}: the log records no calibration in its metadata")
        return Calibration.from_json(record)
    if not p.exists():
        raise FileNotFoundError(f"calibration {p}: no such file or log directory")
    try:
        record = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"calibration {p}: not a JSON document ({exc})") from None
    if isinstance(record, dict) and isinstance(record.get("calibration"), dict):
        record = record["calibration"]
    if not isinstance(record, dict):
        raise ValueError(f"calibration {p}: expected a JSON object; found {type(record).__name__}")
    try:
        return Calibration.from_json(record)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"calibration {p}: {exc}") from None


# -- cost profiles: a calibration as a file of its own ------------------------------------------
#: reward kinds whose values the step costs price (``arm_cost`` and the count speed-up)
PRICED_KINDS = ("alignment", "speedup_count")


def _machine(calibration: Calibration, hardware: Mapping[str, Any] | None) -> str:
    """``"cuda: NVIDIA H200"`` / ``"cpu: AMD EPYC 7B13, 1 thread"``: where the costs were measured."""
    hw = dict(hardware or {})
    if calibration.device.startswith("cuda") and hw.get("cuda_device"):
        return f"{calibration.device}: {hw['cuda_device']}"
    name = hw.get("cpu") or "unknown CPU"
    threads = f", {calibration.n_threads} thread{'s' if calibration.n_threads != 1 else ''}"
    return f"{calibration.device}: {name}{threads}"


def own_calibration_label(calibration: Calibration, hardware: Mapping[str, Any] | None) -> str:
    """``RewardDefinition.priced_by`` of a build that calibrated on its own machine."""
    return f"step costs measured by this build ({_machine(calibration, hardware)})"


def calibration_source_label(path: str | os.PathLike[str]) -> str:
    """``RewardDefinition.priced_by`` of costs read with ``load_calibration(path)``: which file or
    log, and the machine that measured them."""
    import json
    from pathlib import Path

    text = str(path)
    if text.startswith("fit:"):
        return f"step costs of the log {text[4:]} with the round and verified-token costs fitted to its wall times"
    p = Path(path)
    cal = load_calibration(p)
    if p.is_dir():
        from logging_data import open_log

        return f"calibration of the log {p} ({_machine(cal, open_log(p).metadata.extra.get('hardware'))})"
    record = json.loads(p.read_text())
    hardware = record.get("hardware") if isinstance(record, dict) else None
    return f"cost profile {p} ({_machine(cal, hardware if isinstance(hardware, dict) else None)})"


def cost_profile(calibration: Calibration, *, models: Any = None, command: str | None = None, what: str = "") -> dict[str, Any]:
    """A cost profile: the calibration, the machine and versions that measured it, and how.

    The file ``bandit-log calibrate --out`` writes and ``load_calibration`` (``--calibration``)
    reads; ``examples/profiles/`` holds the shipped ones. ``models``: the ``ModelsConfig`` timed.
    """
    import datetime

    from .build import environment

    env = environment()
    record: dict[str, Any] = {
        "what": what or (f"step costs of {models.target.path if models is not None else 'the target'} and its arms, measured "
                         f"by `bandit-log calibrate` on {_machine(calibration, env['hardware'])}"),
        "calibration": calibration.to_json(), **env,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }
    if models is not None:
        record["models_file"] = models.source_path
        record["models_toml"] = models.source_text
    return record


def write_profile(path: str | os.PathLike[str], record: Mapping[str, Any]) -> str:
    """Write a cost profile to ``path`` (a new JSON file, written whole or not at all)."""
    from pathlib import Path

    from logging_data.files import write_json_atomic

    p = Path(path)
    if p.exists():
        raise FileExistsError(f"--out {p} already exists; a cost profile is written to a new file (choose another path)")
    if p.suffix.lower() != ".json":
        raise ValueError(f"--out {p}: a cost profile is a JSON file; give a path ending in .json")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"--out {p}: the folder {p.parent} does not exist")
    write_json_atomic(p, dict(record))
    return str(p)


def speedup_count(n_new_tokens: int, target_calls: int, draft_calls: int, relative_cost: float,
                  draft_tokens: int = 0, verify_cost: float = 0.0, round_cost: float = 0.0,
                  prompt_tokens: int = 0, prefill_cost: float = 0.0, arm_prefill_cost: float = 0.0) -> float:
    """``(n_new_tokens + P * p) / (target_calls * (1 + round_cost) + draft_tokens * verify_cost + draft_calls * relative_cost + P * (p + p_d))``.

    ``relative_cost`` = c_d / c_t, ``verify_cost`` = c_v / c_t, ``round_cost`` = c_r / c_t,
    ``prefill_cost`` p = c_p / c_t and ``arm_prefill_cost`` p_d = c_pd / c_t for a prompt of
    ``prompt_tokens`` P (see the module docstring); plain decoding has no rounds and no drafting
    model: pass ``round_cost=0`` and ``arm_prefill_cost=0`` for it. P = 0 leaves the prefill out.
    """
    prefill = prompt_tokens * prefill_cost
    denom = target_calls * (1.0 + round_cost) + draft_tokens * verify_cost + draft_calls * relative_cost + prefill \
        + prompt_tokens * arm_prefill_cost
    if denom <= 0:
        raise ValueError(f"speedup_count needs target_calls + draft_tokens * verify_cost + draft_calls * cost > 0; "
                         f"got {target_calls} + {draft_tokens} * {verify_cost} + {draft_calls} * {relative_cost}")
    return (n_new_tokens + prefill) / denom


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
    from .arms import kind_of
    from .arms.draft import Draft

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

    from .arms import kind_of
    from .arms.base import ArmKind

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
    from .models import ArmConfig

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
