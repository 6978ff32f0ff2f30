"""Per-machine calibration of what one forward step costs, and the count-based speed-up model.

Wall time on a shared machine is noisy; the counts of assisted decoding are not (greedy decoding
is deterministic). So a log keeps both, plus what one step costs *on this machine*:

- ``c_t``: seconds of one target forward step that decodes one token with a KV cache holding
  ``context_len`` tokens (a typical prompt length);
- ``c_d``: the same for the model that drafts for an arm (a draft model, or the target cut to
  its first ``assistant_early_exit`` layers); 0 for prompt lookup and plain decoding, whose
  drafting runs no model.

The count model::

    plain_cost    = n_new_tokens * c_t
    assisted_cost = target_calls * c_t + draft_calls * c_d
    speedup_count = plain_cost / assisted_cost = n_new_tokens / (target_calls + draft_calls * c_d / c_t)

It prices a verification pass (k + 1 tokens at once) like a one-token step, which holds while
the step is memory-bound (GPUs, small k) and flatters drafts where compute dominates (CPUs with
large k); the measured ``speedup_wall`` sits next to it in the log for that reason. Each step is
timed as the median of ``repeats`` runs after ``warmup`` runs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Calibration:
    """Measured step costs (seconds). ``arm_step_s``: arm name -> one drafting step (0: no model)."""

    target_step_s: float
    arm_step_s: Mapping[str, float] = field(default_factory=dict)
    context_len: int = 64
    repeats: int = 5
    n_threads: int = 1
    device: str = "cpu"

    def relative_costs(self) -> dict[str, float]:
        """Arm name -> c_d / c_t (the ``arm_cost`` column and ``Arm.cost``)."""
        return {a: (s / self.target_step_s if self.target_step_s > 0 else 0.0) for a, s in self.arm_step_s.items()}

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["arm_step_s"] = dict(self.arm_step_s)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Calibration":
        keys = ("target_step_s", "arm_step_s", "context_len", "repeats", "n_threads", "device")
        missing = [k for k in ("target_step_s", "arm_step_s") if k not in d]
        if missing:
            raise ValueError(f"calibration record is missing {', '.join(missing)}; found keys {sorted(d)}")
        return cls(**{k: d[k] for k in keys if k in d})


def speedup_count(n_new_tokens: int, target_calls: int, draft_calls: int, relative_cost: float) -> float:
    """``n_new_tokens / (target_calls + draft_calls * relative_cost)`` (see the module docstring)."""
    denom = target_calls + draft_calls * relative_cost
    if denom <= 0:
        raise ValueError(f"speedup_count needs target_calls + draft_calls * cost > 0; got {target_calls} + {draft_calls} * {relative_cost}")
    return n_new_tokens / denom


def _step_seconds(model: Any, vocab_size: int, context_len: int, repeats: int, warmup: int, sync) -> float:
    import torch

    ids = torch.arange(context_len, dtype=torch.long).remainder(max(vocab_size - 1, 1)).unsqueeze(0).to(model.device)
    nxt = ids[:, -1:]
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
            cache.crop(-1)  # drop the timed token again
            if i >= warmup:
                times.append(dt)
    return float(statistics.median(times))


def calibrate(session: Any, context_len: int = 64, repeats: int = 5, warmup: int = 2) -> Calibration:
    """Time one target step and one drafting step per arm on this machine (``session``: a ``DecodingSession``)."""
    import torch

    from .loading import _layers

    if repeats < 1 or warmup < 0 or context_len < 1:
        raise ValueError(f"calibrate needs repeats >= 1, warmup >= 0, context_len >= 1; got {repeats}, {warmup}, {context_len}")
    target = session.target
    ctx = min(context_len, (target.context_length or context_len + 1) - 1)
    vocab = target.model.config.get_text_config().vocab_size
    c_t = _step_seconds(target.model, vocab, ctx, repeats, warmup, session._sync)
    arm_s: dict[str, float] = {}
    for arm in session.config.arms:
        if arm.kind == "draft":
            d = session.draft(arm.name)
            dctx = min(ctx, (d.context_length or ctx + 1) - 1)
            arm_s[arm.name] = _step_seconds(d.model, d.model.config.get_text_config().vocab_size, dctx, repeats, warmup, session._sync)
        elif arm.kind == "early_exit":
            with _layers(target.model, arm.assistant_early_exit):
                arm_s[arm.name] = _step_seconds(target.model, vocab, ctx, repeats, warmup, session._sync)
        else:
            arm_s[arm.name] = 0.0
    return Calibration(target_step_s=c_t, arm_step_s=arm_s, context_len=ctx, repeats=repeats,
                       n_threads=int(torch.get_num_threads()), device=session.device)
