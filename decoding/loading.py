"""Loading models and running them: greedy generation and measured assisted decoding.

``load_model(spec, device, dtype)`` loads a causal LM and its tokenizer from a local Hugging
Face directory, a ``.gguf`` file (``gguf_file=``) or ``packaged:NAME`` (``decoding.packaged``),
offline (``HF_HUB_OFFLINE=1``, ``local_files_only=True``), ``trust_remote_code=False``, and
never from pickled weights (a directory without ``*.safetensors`` is refused).

``DecodingSession(models_config)`` loads the target and every arm's draft once, checks every
arm up front (tokenizers, early-exit support) and offers:

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

import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import cpu_linear
from .models import ArmConfig, ModelsConfig, TargetConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class ModelLoadError(ValueError):
    """A model or tokenizer cannot be loaded; the message names the path and the reason."""


class ArmNotSupportedError(ValueError):
    """An arm cannot run with these models (tokenizers differ, architecture lacks early exit...)."""


class PromptError(ValueError):
    """A prompt cannot be decoded (empty, or too long for the target's context)."""


# -- devices and dtypes ---------------------------------------------------------------------------
def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is present, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but torch sees no CUDA device; use device = \"cpu\" or \"auto\"")
    if device not in ("cpu", "cuda"):
        raise ModelLoadError(f"device must be auto, cpu or cuda; got {device!r}")
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto`` -> float32 on CPU (this kind of CPU has no fast bf16), bfloat16 on CUDA when supported, else float16."""
    import torch

    if dtype == "auto":
        if device == "cpu":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


# -- loading --------------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    """A loaded causal LM with its tokenizer. ``spec`` is the path as written in the models file."""

    spec: str
    model: Any
    tokenizer: Any
    n_params: int

    @property
    def n_layers(self) -> int:
        return int(self.model.config.get_text_config().num_hidden_layers)

    @property
    def context_length(self) -> int | None:
        cfg = self.model.config.get_text_config()
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            v = getattr(cfg, key, None)
            if isinstance(v, int) and v > 0:
                return v
        return None


def _source(spec: str) -> tuple[Path, str | None]:
    """(directory, gguf file name or None) for a model path spec; clear errors when missing."""
    if spec.startswith("packaged:"):
        from .packaged import PackagedModelNotFound, packaged_hf_dir

        try:
            return packaged_hf_dir(spec.split(":", 1)[1]), None
        except PackagedModelNotFound as exc:
            raise ModelLoadError(str(exc)) from None
    p = Path(spec)
    if not p.exists():
        raise ModelLoadError(f"model path {spec}: no such file or directory (expected a Hugging Face directory, a .gguf file or packaged:NAME)")
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise ModelLoadError(f"model path {spec}: a file must be a .gguf; found {p.suffix or 'no suffix'}")
        return p.parent, p.name
    if not (p / "config.json").exists():
        raise ModelLoadError(f"model path {spec}: a directory must hold a Hugging Face model (config.json); none found")
    if not any(p.glob("*.safetensors")):
        found = sorted(x.name for x in p.iterdir())[:6]
        raise ModelLoadError(f"model path {spec}: no *.safetensors weights (pickled weights are never loaded); found {found}")
    return p, None


def load_model(spec: str, device: str = "cpu", dtype: str = "auto") -> LoadedModel:
    """Load a causal LM and its tokenizer from ``spec`` (dir, .gguf or packaged:NAME), in eval mode."""
    import torch  # noqa: F401  (transformers needs it; imported here so errors name torch)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    directory, gguf_file = _source(spec)
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if gguf_file is not None:
        common["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, **common)
        model_kw = dict(common, dtype=torch_dtype)
        if gguf_file is None:
            model_kw["use_safetensors"] = True
        model = AutoModelForCausalLM.from_pretrained(directory, **model_kw)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"model path {spec}: cannot load ({str(exc).splitlines()[0][:200]})") from None
    model.to(device)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    return LoadedModel(spec=spec, model=model, tokenizer=tokenizer, n_params=n_params)


def same_tokenizer(a: LoadedModel, b: LoadedModel) -> bool:
    """True when both tokenizers map the same strings to the same ids and the vocab sizes agree."""
    if a.model.config.get_text_config().vocab_size != b.model.config.get_text_config().vocab_size:
        return False
    return a.tokenizer.get_vocab() == b.tokenizer.get_vocab()


def describe_tokenizer(m: LoadedModel) -> str:
    return f"{type(m.tokenizer).__name__} of {m.spec} (vocab {len(m.tokenizer)}, model vocab_size {m.model.config.get_text_config().vocab_size})"


# -- early exit -----------------------------------------------------------------------------------
@contextmanager
def _layers(model: Any, n: int) -> Iterator[None]:
    """Run ``model`` with its first ``n`` decoder layers only; the config is restored in ``finally``."""
    base = getattr(model, model.base_model_prefix, model)
    original = base.config.num_hidden_layers
    base.config.num_hidden_layers = n
    try:
        yield
    finally:
        base.config.num_hidden_layers = original


def check_early_exit(loaded: LoadedModel, layer: int, arm_name: str = "?") -> None:
    """Refuse, clearly, an early-exit layer this model cannot run; never leaves the config changed.

    transformers' early exit lowers ``config.num_hidden_layers`` while drafting, which only works
    where the decoder loop reads that value (Llama-style ``layers[: num_hidden_layers]``). GPT-2
    and others ignore it or fail. So the model is probed: the logits of a short input with
    ``layer`` layers must differ from the full model's and the call must not fail.
    """
    import torch

    n = loaded.n_layers
    arch = type(loaded.model).__name__
    if not 1 <= layer < n:
        raise ArmNotSupportedError(f"arm {arm_name!r}: assistant_early_exit must be in [1, {n - 1}] for {arch} ({n} layers); got {layer}")
    ids = torch.tensor([[min(5, loaded.model.config.get_text_config().vocab_size - 1)] * 4], device=loaded.model.device)
    try:
        with torch.no_grad():
            full = loaded.model(input_ids=ids, use_cache=False).logits
            with _layers(loaded.model, layer):
                part = loaded.model(input_ids=ids, use_cache=False).logits
    except Exception as exc:  # the architecture cannot run with fewer layers
        raise ArmNotSupportedError(
            f"arm {arm_name!r}: {arch} (model_type {loaded.model.config.model_type!r}) cannot run assistant_early_exit={layer}: "
            f"running it with config.num_hidden_layers={layer} fails ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
        ) from None
    if torch.equal(full, part):
        raise ArmNotSupportedError(
            f"arm {arm_name!r}: {arch} (model_type {loaded.model.config.model_type!r}) ignores config.num_hidden_layers, "
            f"so assistant_early_exit={layer} would not exit early; early exit needs a Llama-style decoder (llama, mistral, qwen2...)"
        )


# -- outcomes -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DecodeOutcome:
    """One prompt decoded with one arm (batch size 1, greedy).

    ``tokens``: the new token ids (prompt excluded). Counts are from the last timed run (they are
    deterministic under greedy decoding); ``wall_time_s`` is the median of ``wall_times_s``.
    ``lossless`` is None when no reference was given.
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

    @property
    def tokens_per_s(self) -> float:
        return self.n_new_tokens / self.wall_time_s if self.wall_time_s > 0 else float("nan")


@dataclass
class _Counter:
    target_calls: int = 0
    draft_calls: int = 0
    fed: list[int] = field(default_factory=list)


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
        self.max_new_tokens = config.target.max_new_tokens
        self._drafts: dict[str, LoadedModel] = {}
        self._universal: dict[str, bool] = {}
        loaded: dict[str, LoadedModel] = {}
        for arm in config.arms:
            if arm.kind == "draft":
                path = config.resolve(arm.draft)
                if path not in loaded:
                    loaded[path] = load_model(path, self.device, config.target.dtype)
                d = loaded[path]
                same = same_tokenizer(self.target, d)
                if not same and not arm.universal:
                    raise ArmNotSupportedError(
                        f"arm {arm.name!r}: the draft's tokenizer differs from the target's "
                        f"(target: {describe_tokenizer(self.target)}; draft: {describe_tokenizer(d)}); "
                        f"set `universal = true` on the arm to use universal assisted decoding"
                    )
                self._drafts[arm.name] = d
                self._universal[arm.name] = not same
            elif arm.kind == "early_exit":
                check_early_exit(self.target, arm.assistant_early_exit, arm.name)
        self.linear, self.linear_reason = cpu_linear.resolve(config.target.linear, self.device, self.target.model.dtype)
        if self.linear == "onednn":
            for m in {id(x.model): x.model for x in [self.target, *self._drafts.values()]}.values():
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
        """Arm name -> parameters (millions) of the model that drafts for it (draft and early-exit arms)."""
        out = {}
        for a in self.config.arms:
            if a.kind == "draft":
                out[a.name] = self._drafts[a.name].n_params / 1e6
            elif a.kind == "early_exit":
                out[a.name] = self.target.n_params / 1e6 * a.assistant_early_exit / self.target.n_layers
        return out

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
        tok = m.tokenizer
        if self.use_chat_template and getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
            ids = list(tok(text, add_special_tokens=False)["input_ids"])
        else:
            ids = list(tok(prompt)["input_ids"])
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
        if arm.kind == "draft":
            if self._universal[arm.name]:
                raise ArmNotSupportedError(f"arm {arm.name!r} uses another tokenizer; use arm_greedy(prompts, arm) for its own output")
            return self._greedy(self._drafts[arm.name], batch, max_new_tokens)
        if arm.kind == "early_exit":
            with _layers(self.target.model, arm.assistant_early_exit):
                return self._greedy(self.target, batch, max_new_tokens)
        raise ArmNotSupportedError(f"arm {arm.name!r} (kind {arm.kind}) runs no model of its own; greedy() takes the target, a draft arm or an early-exit arm")

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
        if a.kind in ("none", "prompt_lookup"):
            return [None] * len(prompts)
        if a.kind == "draft" and self._universal[a.name]:
            d = self._drafts[a.name]
            out = self._greedy(d, [self._encode(d, p, max_new_tokens) for p in prompts], max_new_tokens)
            texts = d.tokenizer.batch_decode(out, skip_special_tokens=True)
            return [list(self.target.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        return self.greedy([self.encode(p, max_new_tokens) for p in prompts], a.name, max_new_tokens)

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
        """Decode one prompt greedily with ``arm`` (None or a ``none`` arm: plain decoding).

        ``warmup`` untimed runs, then ``repeats`` timed runs; the counts come from the last run.
        With ``reference`` (the target's plain greedy tokens) ``lossless`` says whether the
        output equals it token for token, and ``first_mismatch`` where it first differs.
        """
        import torch

        if repeats < 1 or warmup < 0:
            raise ValueError(f"repeats must be >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}")
        a = self.arm(arm)
        ids = list(input_ids)
        if not ids:
            raise PromptError("assisted(): input_ids is empty")
        n_new = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        kwargs: dict[str, Any] = dict(max_new_tokens=n_new, do_sample=False, num_beams=1, pad_token_id=self.pad_id, **self._eos_kwargs())
        kwargs.update(a.generate_kwargs())
        settings_model = None
        draft_module = None
        if a.kind == "draft":
            d = self._drafts[a.name]
            kwargs["assistant_model"] = d.model
            settings_model = d.model
            draft_module = d.model
            if self._universal[a.name]:
                kwargs["tokenizer"] = self.target.tokenizer
                kwargs["assistant_tokenizer"] = d.tokenizer
        elif a.kind == "early_exit":
            settings_model = self.target.model
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
        lossless, mismatch = None, None
        if reference is not None:
            ref = list(reference)
            lossless = tokens == ref
            if not lossless:
                mismatch = next((j for j, (p, q) in enumerate(zip(tokens, ref)) if p != q), min(len(tokens), len(ref)))
        return DecodeOutcome(
            arm=a.name, tokens=tuple(tokens), n_new_tokens=len(tokens), target_calls=counter.target_calls,
            draft_calls=counter.draft_calls, draft_tokens=int(draft_tokens),
            accepted_tokens=len(tokens) - counter.target_calls, wall_time_s=float(statistics.median(times)),
            wall_times_s=tuple(times), n_repeats=repeats, n_threads=int(torch.get_num_threads()),
            lossless=lossless, first_mismatch=mismatch,
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
