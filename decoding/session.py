"""The decoding session: the target and the arms' models loaded once, greedy generation and
measured assisted decoding.

``DecodingSession(models_config)`` loads the target once and, through each arm's kind
(``decoding.arms``), what the arm needs (a draft model, a head), checking every arm up front
(tokenizers, early-exit support, a head's shape), and offers:

- ``encode(prompt) -> list[int]``: token ids, through the chat template when configured;
- ``greedy(batch, model="target") -> list[list[int]]``: batched greedy generation with left
  padding (the target, a same-tokenizer draft, or an early-exit arm's truncated target);
- ``arm_greedy(prompts, arm) -> list[list[int] | None]``: an arm's own greedy output in the
  target's token space (None for arms that run no model of their own);
- ``assisted(input_ids, arm, ...) -> DecodeOutcome``: one prompt decoded greedily with the arm
  (batch size 1, ``do_sample=False``), with the counts below, median wall time over repeats
  after warm-up, and the lossless check against a reference.

How the counts are taken (forward pre-hooks, registered for the call and removed in
``finally``):

- ``target_calls``: forward passes of the full target. For an early-exit arm the target module
  also runs the drafting passes (with ``config.num_hidden_layers`` lowered by transformers); a
  pass that runs with fewer layers than the model has is counted as a draft call instead.
- ``draft_calls``: forward passes of the draft model (or early-exit passes); 0 for prompt lookup
  and plain decoding.
- ``draft_tokens``: candidate tokens the target verified. Verification pass i feeds the target
  the tokens it has not cached: the whole prompt plus the candidates on the first pass, the last
  accepted token plus the candidates afterwards; so candidates_i = fed_i - prompt_len (i = 0)
  and fed_i - 1 (i > 0).
- ``accepted_tokens``: under greedy verification every target pass emits the accepted
  candidates plus one token of its own, so ``accepted = n_new_tokens - target_calls`` exactly
  (transformers recounts the matches after cutting at EOS or the length limit). It is derived,
  not read from transformers' internals.

Nothing here mutates a caller's model or config for longer than a call: assistant settings are
written to the assistant's ``generation_config`` for the call and restored in ``finally``
(transformers' "heuristic" schedule writes ``num_assistant_tokens`` back; that is undone too);
early-exit probing and early-exit greedy generation restore ``config.num_hidden_layers``.
"""

from __future__ import annotations

import functools
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from . import cpu_linear
from .arms import kind_of
from .arms.base import check_draft_lengths
from .loading import (EXACT_DTYPES, InexactDtypeWarning, LoadedModel, ModelLoadError, PromptError, load_model, prompt_ids,
                      resolve_device)
from .models import ArmConfig, ModelsConfig


@dataclass(frozen=True)
class DecodeOutcome:
    """One prompt decoded with one arm (batch size 1, greedy).

    ``tokens``: the new token ids (prompt excluded). Counts are from the last timed run (they are
    deterministic under greedy decoding); ``wall_time_s`` is the median of ``wall_times_s``.
    ``lossless`` is None when no reference was given; ``token_match_rate`` is then the share of
    the reference reproduced token for token before the first difference (1.0 when lossless):
    what an inexact mode (bfloat16, float16) keeps of plain greedy output.
    """

    arm: str
    tokens: tuple[int, ...]
    n_new_tokens: int
    target_calls: int
    draft_calls: int
    draft_tokens: int
    accepted_tokens: int
    wall_time_s: float
    wall_times_s: tuple[float, ...]
    n_repeats: int
    n_threads: int
    lossless: bool | None = None
    first_mismatch: int | None = None
    token_match_rate: float | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.n_new_tokens / self.wall_time_s if self.wall_time_s > 0 else float("nan")


@dataclass
class _Counter:
    target_calls: int = 0
    draft_calls: int = 0
    fed: list[int] = field(default_factory=list)


def _check(tokens: Sequence[int], reference: Sequence[int] | None) -> tuple[bool | None, int | None, float | None]:
    """(lossless, first mismatch, token-match rate) of ``tokens`` against plain greedy ``reference``
    (all None without one); the rate is the share reproduced before the first difference."""
    if reference is None:
        return None, None, None
    tokens, ref = list(tokens), list(reference)
    if tokens == ref:
        return True, None, 1.0
    mismatch = next((j for j, (p, q) in enumerate(zip(tokens, ref)) if p != q), min(len(tokens), len(ref)))
    return False, mismatch, mismatch / max(len(tokens), len(ref))


def _cut_at_eos(tokens: list[int], eos: set[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[: i + 1]
    return tokens


# -- the session ----------------------------------------------------------------------------------
PLAIN = ArmConfig(name="<plain>", kind="none")


class DecodingSession:
    """The target and every arm's draft, loaded once, with greedy and assisted decoding.

    ``device`` overrides the models file's ``[target] device`` (drafts follow the target).
    ``threads`` sets torch's intra-op thread count for the process (``torch.set_num_threads``;
    None leaves it); the count in use is recorded in every outcome. Raises ``ModelLoadError`` / ``ArmNotSupportedError`` before anything is decoded when a path
    is missing or an arm cannot run.
    """

    def __init__(self, config: ModelsConfig, device: str | None = None, threads: int | None = None) -> None:
        import torch

        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads must be >= 1; got {threads}")
            torch.set_num_threads(threads)
        self.config = config
        self.device = resolve_device(device or config.target.device)
        self.target = load_model(config.resolve(config.target.path), self.device, config.target.dtype)
        self.exact = config.target.dtype in EXACT_DTYPES
        if not self.exact:
            import warnings

            warnings.warn(f"[target] dtype = {config.target.dtype!r}: a faster, inexact mode; assisted output may differ "
                          f"from plain greedy (measured on an H200 in bfloat16: 8 of 16 runs differed), and the "
                          f"lossless check will say where it does (use dtype = \"auto\" or \"float32\" for exact output)",
                          InexactDtypeWarning, stacklevel=2)
        self.max_new_tokens = config.target.max_new_tokens
        self._drafts: dict[str, LoadedModel] = {}
        self._universal: dict[str, bool] = {}
        self.arm_state: dict[str, Any] = {}  # arm name -> what its kind loaded for it (decoding.arms)
        loaded: dict[str, LoadedModel] = {}  # path -> model: arms that name one file share it
        check_draft_lengths(self)
        for arm in config.arms:
            kind_of(arm).load(self, arm, loaded)
        self.linear, self.linear_reason = cpu_linear.resolve(config.target.linear, self.device, self.target.model.dtype)
        if self.linear == "onednn":
            added = [m for a in config.arms for m in kind_of(a).models(self, a)]
            for m in {id(x): x for x in [self.target.model, *added]}.values():
                cpu_linear.pack_linears(m)
        self.n_threads = int(torch.get_num_threads())
        tok = self.target.tokenizer
        self.use_chat_template = bool(getattr(tok, "chat_template", None)) if config.target.chat_template == "auto" else bool(config.target.chat_template)
        if self.use_chat_template and not getattr(tok, "chat_template", None):
            raise ModelLoadError(f"[target] chat_template = true, but the tokenizer of {self.target.spec} has no chat template")
        eos = self.target.model.generation_config.eos_token_id
        if eos is None:
            eos = tok.eos_token_id
        self.eos_ids: set[int] = set(eos if isinstance(eos, (list, tuple)) else ([] if eos is None else [eos]))
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (min(self.eos_ids) if self.eos_ids else 0)

    # -- helpers -------------------------------------------------------------------------------
    @functools.cached_property
    def target_identity(self) -> dict[str, Any]:
        """The target's identity (``decoding.artifacts.target_identity``): what a head or datastore made
        for it records, and what one loaded for it is checked against."""
        from .artifacts import target_identity

        return target_identity(self.target)

    def arm(self, arm: str | ArmConfig | None) -> ArmConfig:
        if arm is None:
            return PLAIN
        if isinstance(arm, ArmConfig):
            return arm
        return self.config.arm(arm)

    def draft(self, arm: str) -> LoadedModel:
        """The loaded draft model of a ``draft`` arm."""
        if arm not in self._drafts:
            raise KeyError(f"arm {arm!r} has no draft model; draft arms: {', '.join(self._drafts) or 'none'}")
        return self._drafts[arm]

    def n_params_m(self) -> dict[str, float]:
        """Arm name -> parameters (millions) of the model that drafts for it (arms that run one)."""
        sizes = {a.name: kind_of(a).n_params_m(self, a) for a in self.config.arms}
        return {name: size for name, size in sizes.items() if size is not None}

    def _sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, prompt: str, max_new_tokens: int | None = None) -> list[int]:
        """Token ids of ``prompt`` for the target (chat template when configured).

        Refuses an empty prompt and one that leaves no room for ``max_new_tokens`` in the
        target's context, with ``PromptError``.
        """
        return self._encode(self.target, prompt, max_new_tokens)

    def _encode(self, m: LoadedModel, prompt: str, max_new_tokens: int | None) -> list[int]:
        if not isinstance(prompt, str) or not prompt.strip():
            raise PromptError(f"prompt must be a non-empty string; got {prompt!r}")
        ids = prompt_ids(m.tokenizer, prompt, self.use_chat_template)
        n_new = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        ctx = m.context_length
        if ctx is not None and len(ids) + n_new > ctx:
            raise PromptError(
                f"prompt is {len(ids)} tokens; with max_new_tokens={n_new} that exceeds the context of {m.spec} "
                f"({ctx} tokens); shorten the prompt or lower max_new_tokens (prompt starts {prompt[:40]!r})"
            )
        return ids

    # -- greedy ------------------------------------------------------------------------------
    def greedy(self, batch: Sequence[Sequence[int]], model: str = "target", max_new_tokens: int | None = None) -> list[list[int]]:
        """Greedy new tokens for each row of ``batch`` (lists of target token ids), batched with left padding.

        ``model``: ``"target"``, the name of a draft arm whose draft shares the target's
        tokenizer, or an early-exit arm (the target's first layers). Rows are cut after the
        first EOS (inclusive).
        """
        if model == "target":
            return self._greedy(self.target, batch, max_new_tokens)
        arm = self.config.arm(model)
        return kind_of(arm).greedy(self, arm, batch, max_new_tokens)

    def _greedy(self, m: LoadedModel, batch: Sequence[Sequence[int]], max_new_tokens: int | None) -> list[list[int]]:
        import torch

        if not batch:
            return []
        rows = [list(r) for r in batch]
        if any(len(r) == 0 for r in rows):
            raise PromptError("greedy(): every row of the batch needs at least one token")
        width = max(len(r) for r in rows)
        pad = self.pad_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
        n_new = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        with torch.no_grad():
            out = m.model.generate(
                input_ids=ids.to(m.model.device), attention_mask=mask.to(m.model.device), max_new_tokens=n_new,
                do_sample=False, num_beams=1, pad_token_id=pad, **self._eos_kwargs(),
            )
        return [_cut_at_eos(out[i, width:].tolist(), self.eos_ids) for i in range(len(rows))]

    def _eos_kwargs(self) -> dict[str, Any]:
        return {"eos_token_id": sorted(self.eos_ids)} if self.eos_ids else {}

    def arm_greedy(self, prompts: Sequence[str], arm: str | ArmConfig, max_new_tokens: int | None = None) -> list[list[int] | None]:
        """The arm's own greedy output per prompt, in the target's token space.

        Draft arms: the draft decodes on its own (a draft with another tokenizer decodes its own
        encoding of the prompt; its text is re-encoded with the target's tokenizer). Early-exit
        arms: the target's first layers. ``none`` and ``prompt_lookup``: None per prompt.
        """
        a = self.arm(arm)
        return kind_of(a).arm_greedy(self, a, prompts, max_new_tokens)

    # -- assisted ------------------------------------------------------------------------------
    def assisted(
        self,
        input_ids: Sequence[int],
        arm: str | ArmConfig | None,
        *,
        repeats: int = 1,
        warmup: int = 0,
        reference: Sequence[int] | None = None,
        max_new_tokens: int | None = None,
    ) -> DecodeOutcome:
        """Decode one prompt greedily with ``arm`` (None or a ``none`` arm: plain decoding), through
        transformers' ``generate()``; an arm whose kind ``generate()`` cannot run (a head) through the
        project's loop (``looped``), with the same output and counts.

        ``warmup`` untimed runs, then ``repeats`` timed runs; the counts come from the last run.
        With ``reference`` (the target's plain greedy tokens) ``lossless`` says whether the
        output equals it token for token, and ``first_mismatch`` where it first differs.
        """
        import torch

        if repeats < 1 or warmup < 0:
            raise ValueError(f"repeats must be >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}")
        a = self.arm(arm)
        if kind_of(a).looped(a):  # a kind transformers cannot run, or an arm that asks: the project's loop
            return self.looped(input_ids, a, repeats=repeats, warmup=warmup, reference=reference, max_new_tokens=max_new_tokens)
        ids = list(input_ids)
        if not ids:
            raise PromptError("assisted(): input_ids is empty")
        n_new = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        kwargs: dict[str, Any] = dict(max_new_tokens=n_new, do_sample=False, num_beams=1, pad_token_id=self.pad_id, **self._eos_kwargs())
        kwargs.update(a.generate_kwargs())
        models, settings_model, draft_module = kind_of(a).assisted_kwargs(self, a)
        kwargs.update(models)
        x = torch.tensor([ids], dtype=torch.long, device=self.target.model.device)
        mask = torch.ones_like(x)
        times: list[float] = []
        counter = _Counter()
        out = None
        for i in range(warmup + repeats):
            counter = _Counter()
            with _assistant_settings(settings_model, a.assistant_settings()), _counting(self.target.model, draft_module, counter):
                self._sync()
                t0 = time.perf_counter()
                with torch.no_grad():
                    out = self.target.model.generate(input_ids=x, attention_mask=mask, **kwargs)
                self._sync()
                dt = time.perf_counter() - t0
            if i >= warmup:
                times.append(dt)
        tokens = _cut_at_eos(out[0, len(ids):].tolist(), self.eos_ids)
        fed = counter.fed
        draft_tokens = sum(f - (len(ids) if j == 0 else 1) for j, f in enumerate(fed))
        lossless, mismatch, match = _check(tokens, reference)
        return DecodeOutcome(
            arm=a.name, tokens=tuple(tokens), n_new_tokens=len(tokens), target_calls=counter.target_calls,
            draft_calls=counter.draft_calls, draft_tokens=int(draft_tokens),
            accepted_tokens=len(tokens) - counter.target_calls, wall_time_s=float(statistics.median(times)),
            wall_times_s=tuple(times), n_repeats=repeats, n_threads=int(torch.get_num_threads()),
            lossless=lossless, first_mismatch=mismatch, token_match_rate=match,
        )

    # -- the project's own loop on a static cache (decoding.specloop) ----------------------------
    def drafter(self, arm: str | ArmConfig | None) -> Any:
        """The ``decoding.specloop`` drafter of ``arm`` (None or a ``none`` arm: plain decoding).

        A draft model or early exit drafts a constant ``num_assistant_tokens`` (default
        ``DEFAULT_DRAFT_TOKENS``) per round: transformers' heuristic schedule and confidence stop
        are not copied, so their draft calls differ from ``assisted``'s; outputs never do."""
        a = self.arm(arm)
        return kind_of(a).drafter(self, a)

    def static_target(self, length: int, compile: bool = False) -> Any:
        """The target on a static cache of at least ``length`` positions, kept and reused (a compiled
        step stays valid while its cache does); grown in steps of 256 when a prompt needs more."""
        from .specloop import StaticTarget

        held = getattr(self, "_static", None)
        if held is None or held.max_len < length or bool(held._compiled) != bool(compile):
            size = -(-int(length) // 256) * 256
            limit = self.target.context_length
            if limit:
                if length > limit:
                    raise PromptError(f"the prompt and its new tokens need {length} positions; the target's context holds {limit}")
                size = min(size, limit)
            held = StaticTarget(self.target.model, size, compile=compile)
            self._static = held
        return held

    def loop_block(self) -> int:
        """Positions ``looped`` keeps free past the new tokens: the longest draft length of the models
        file's arms (20 where one fixes none), padded to the power-of-two bucket of a compiled step."""
        block = max([x.n_draft_tokens or 20 for x in self.config.arms if not kind_of(x).plain] + [1])
        return 1 << block.bit_length()

    def looped(self, input_ids: Sequence[int], arm: str | ArmConfig | None, *, repeats: int = 1, warmup: int = 0,
               reference: Sequence[int] | None = None, max_new_tokens: int | None = None, compile: bool = False) -> DecodeOutcome:
        """``assisted`` through the project's own loop on a static cache (``decoding.specloop``):
        same output, prompt-lookup counts equal to transformers'; ``compile``: CUDA-graph steps."""
        import torch

        from .specloop import speculative_greedy

        if repeats < 1 or warmup < 0:
            raise ValueError(f"repeats must be >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}")
        a = self.arm(arm)
        ids = list(input_ids)
        if not ids:
            raise PromptError("looped(): input_ids is empty")
        n_new = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        drafter = self.drafter(a)
        block = self.loop_block()
        limit = self.target.context_length
        if limit and len(ids) + n_new + block > limit:
            raise PromptError(f"the prompt ({len(ids)} tokens), max_new_tokens = {n_new} and a drafted block of {block} (the "
                              f"longest draft length of the models file's arms, padded to a power of two) need "
                              f"{len(ids) + n_new + block} positions; the target's context holds {limit}")
        target = self.static_target(len(ids) + n_new + block, compile=compile)
        times, result = [], None
        for i in range(warmup + repeats):
            self._sync()
            t0 = time.perf_counter()
            result = speculative_greedy(target, ids, drafter, n_new, self.eos_ids)
            self._sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        tokens = list(result.tokens)
        lossless, mismatch, match = _check(tokens, reference)
        return DecodeOutcome(
            arm=a.name, tokens=tuple(tokens), n_new_tokens=len(tokens), target_calls=result.target_calls,
            draft_calls=result.draft_calls, draft_tokens=result.draft_tokens, accepted_tokens=result.accepted_tokens,
            wall_time_s=float(statistics.median(times)), wall_times_s=tuple(times), n_repeats=repeats,
            n_threads=int(torch.get_num_threads()), lossless=lossless, first_mismatch=mismatch, token_match_rate=match,
        )

    def plain(self, input_ids: Sequence[int], *, repeats: int = 1, warmup: int = 0, max_new_tokens: int | None = None) -> DecodeOutcome:
        """Plain greedy decoding of one prompt (batch size 1), timed like ``assisted``."""
        return self.assisted(input_ids, None, repeats=repeats, warmup=warmup, max_new_tokens=max_new_tokens)

    def decode_text(self, tokens: Sequence[int]) -> str:
        return self.target.tokenizer.decode(list(tokens), skip_special_tokens=True)


@contextmanager
def _assistant_settings(model: Any, settings: dict[str, Any]) -> Iterator[None]:
    """Write ``settings`` (and keep ``num_assistant_tokens``) on ``model.generation_config``; restore in finally."""
    if model is None:
        yield
        return
    gc = model.generation_config
    keys = set(settings) | {"num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold"}
    saved = {k: getattr(gc, k, None) for k in keys}
    try:
        for k, v in settings.items():
            setattr(gc, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(gc, k, v)


@contextmanager
def _counting(target: Any, draft: Any, counter: _Counter) -> Iterator[None]:
    """Count target and draft forward passes with pre-hooks; the hooks are removed in finally."""
    base = getattr(target, target.base_model_prefix, target)
    full_layers = base.config.num_hidden_layers

    def on_target(module, args, kwargs):
        if base.config.num_hidden_layers < full_layers:  # an early-exit drafting pass
            counter.draft_calls += 1
            return None
        x = kwargs.get("input_ids")
        if x is None:
            x = args[0] if args else kwargs.get("inputs_embeds")
        counter.target_calls += 1
        counter.fed.append(int(x.shape[1]))
        return None

    def on_draft(module, args, kwargs):
        counter.draft_calls += 1
        return None

    handles = [target.register_forward_pre_hook(on_target, with_kwargs=True)]
    try:
        if draft is not None:
            handles.append(draft.register_forward_pre_hook(on_draft, with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()
