"""Pricing: the count model and cost profiles, pure (no model, no torch, nothing else of ``decoding``).

Wall time on a shared machine is noisy; the counts of assisted decoding are not (greedy decoding
is deterministic), and they do not depend on the machine, only their prices do. This module holds
what prices counts: one machine's step costs (``Calibration``), the count speed-up
(``speedup_count``), the calibration record's schema and its files (cost profiles:
``load_calibration``, ``write_profile``, ``check_record``), a calibration keyed by the arms of a
models file (``for_arms``) and its round and verified-token costs fitted to a measured log
(``fit_calibration``). It sits on the ground floor of ``decoding``: the arm kinds, the build, the
replays and the drafter pipeline price through it. Timing a live session to measure the costs is
``decoding.calibrate``, which sits above the arm kinds.

The costs, per machine:

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
to it in the log. A log built on one machine can be priced under another's cost profile
(``decoding.reprice``); every speed-up says which profile priced it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

#: transformers' default number of draft tokens per block (``num_assistant_tokens``) when an arm fixes none
DEFAULT_DRAFT_TOKENS = 20
#: the arm kinds that draft with no model (plain decoding and prompt lookup): their drafting step costs nothing. The
#: kinds are ``decoding.arms``' classes, which sit above this module; each says ``model_free`` itself, and
#: ``tests/decoding/test_arm_kinds.py`` holds the two together
MODEL_FREE_KINDS = ("none", "prompt_lookup")
#: the arm kind that is plain decoding (no drafting, no assisted rounds; ``ArmKind.plain``)
PLAIN_KIND = "none"


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
    """``calibration`` keyed by the arms of a models file (``ArmConfig``s) or a log (``Arm``s): model-free
    arms (``MODEL_FREE_KINDS``: plain, prompt lookup) cost 0; an arm that runs a model must have its
    drafting step in the calibration."""
    steps: dict[str, float] = {}
    prefill: dict[str, float] = {}
    rounds: dict[str, float] = {}
    for arm in arms:
        if arm.kind in MODEL_FREE_KINDS:
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
    from scipy.optimize import nnls

    drafts_free = set(MODEL_FREE_KINDS) - {PLAIN_KIND}  # prompt lookup: no model, real rounds
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


def machine_label(calibration: Calibration, hardware: Mapping[str, Any] | None) -> str:
    """``"cuda: NVIDIA H200"`` / ``"cpu: AMD EPYC 7B13, 1 thread"``: where the costs were measured."""
    hw = dict(hardware or {})
    if calibration.device.startswith("cuda") and hw.get("cuda_device"):
        return f"{calibration.device}: {hw['cuda_device']}"
    name = hw.get("cpu") or "unknown CPU"
    threads = f", {calibration.n_threads} thread{'s' if calibration.n_threads != 1 else ''}"
    return f"{calibration.device}: {name}{threads}"


def own_calibration_label(calibration: Calibration, hardware: Mapping[str, Any] | None) -> str:
    """``RewardDefinition.priced_by`` of a build that calibrated on its own machine."""
    return f"step costs measured by this build ({machine_label(calibration, hardware)})"


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

        return f"calibration of the log {p} ({machine_label(cal, open_log(p).metadata.extra.get('hardware'))})"
    record = json.loads(p.read_text())
    hardware = record.get("hardware") if isinstance(record, dict) else None
    return f"cost profile {p} ({machine_label(cal, hardware if isinstance(hardware, dict) else None)})"


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
