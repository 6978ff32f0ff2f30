"""Loading models: local Hugging Face folders, GGUF files and packaged models, offline and safely.

``load_model(spec, device, dtype)`` loads a causal LM and its tokenizer from a local Hugging
Face directory, a ``.gguf`` file (``gguf_file=``) or ``packaged:NAME`` (``decoding.packaged``),
offline (``HF_HUB_OFFLINE=1``, ``local_files_only=True``), ``trust_remote_code=False``, and
never from pickled weights (a directory without ``*.safetensors`` is refused).

Running them is ``decoding.session.DecodingSession``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .quiet import quiet_progress

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


EXACT_DTYPES = ("auto", "float32")  # dtypes under which assisted output is identical to plain greedy (measured)


def resolve_dtype(dtype: str, device: str):
    """``auto`` -> float32 on every device: the dtype under which assisted decoding stays exact.

    Measured on an H200 (``../shared/profiles``): in bfloat16, 8 of 16 assisted runs differed from
    plain greedy (a verification pass over several tokens rounds differently from one-token
    steps); in float32, 16 of 16 were identical. ``bfloat16`` and ``float16`` stay available on
    request, as a faster inexact mode (``DecodingSession`` warns; the lossless check reports).
    """
    import torch

    if dtype == "auto":
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


class InexactDtypeWarning(UserWarning):
    """The target runs in half precision: assisted output may differ from plain greedy."""


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


def model_source(spec: str) -> tuple[Path, str | None]:
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


#: transformers' notices about its own calls, which a user of this project cannot act on: dropped
#: (logger name, start of the message). Assisted decoding with a draft model makes transformers call
#: the draft's generate() with both a generation_config and generation arguments, and it then
#: warns that this is deprecated.
TRANSFORMERS_NOTICES = (
    ("transformers.generation.utils", "Passing `generation_config` together with generation-related arguments"),
)


class _DropNotices:
    """A ``logging`` filter dropping the records whose message starts with one of ``starts``."""

    def __init__(self, starts: tuple[str, ...]) -> None:
        self.starts = starts

    def filter(self, record: Any) -> bool:
        return not str(record.getMessage()).startswith(self.starts)


def _quiet_transformers_notices() -> None:
    """Install the ``TRANSFORMERS_NOTICES`` filters once per process."""
    import logging

    for name, start in TRANSFORMERS_NOTICES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) and start in f.starts for f in logger.filters):
            logger.addFilter(_DropNotices((start,)))


def load_tokenizer(spec: str) -> Any:
    """The tokenizer of model ``spec`` (dir, .gguf or packaged:NAME) alone, without its weights."""
    from transformers import AutoTokenizer

    directory, gguf_file = model_source(spec)
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if gguf_file is not None:
        common["gguf_file"] = gguf_file
    try:
        return AutoTokenizer.from_pretrained(directory, **common)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"model path {spec}: cannot load its tokenizer ({str(exc).splitlines()[0][:200]})") from None


def load_model(spec: str, device: str = "cpu", dtype: str = "auto") -> LoadedModel:
    """Load a causal LM and its tokenizer from ``spec`` (dir, .gguf or packaged:NAME), in eval mode."""
    import torch  # noqa: F401  (transformers needs it; imported here so errors name torch)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers_notices()

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    directory, gguf_file = model_source(spec)
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if gguf_file is not None:
        common["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, **common)
        model_kw = dict(common, dtype=torch_dtype)
        if gguf_file is None:
            model_kw["use_safetensors"] = True
            # read into memory the model owns, not a mapping of the file: on a CPU the packed linear
            # layers replace the weights (decoding.cpu_linear), and a mapping would keep every page
            # the packing read resident beside them (the Qwen pair: 16.6 GB instead of 9.6)
            model_kw["disable_mmap"] = True
        with quiet_progress():
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
def first_layers(model: Any, n: int) -> Iterator[None]:
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
            with first_layers(loaded.model, layer):
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


def prompt_ids(tokenizer: Any, prompt: str, chat_template: bool = True) -> list[int]:
    """Token ids a target sees for ``prompt``: with ``chat_template`` and a tokenizer that has one,
    the template's text (a user turn plus the generation prompt) tokenized without extra special
    tokens; otherwise the plain encoding. The one encoder of decoding, distillation and features."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    return [int(i) for i in tokenizer(prompt)["input_ids"]]
