"""Prompt featurizers: text -> context vector x, chosen by name in a policy's config.

A featurizer is fitted on training prompts (some need no fitting), then maps any list of prompt
texts to float32 (n, d). It saves to and loads from a folder in plain formats (JSON, ``.npy``,
safetensors), never pickles. Cheap featurizers (hashed n-grams, TF-IDF + SVD) live here with
numpy and scikit-learn; model-based ones (a packaged sentence-embedding model, the target's own
mean-pooled hidden states) live in ``decoding.features`` and register here by name, so that this
package never imports torch or transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Featurizer(Protocol):
    name: str

    def fit(self, texts: Sequence[str]) -> "Featurizer":
        """Learn what the featurizer needs from training prompts; returns self."""
        ...

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (n, d) features, one row per text."""
        ...

    def save(self, path: Path) -> None: ...


# name -> "module:Class"; imported on first use.
FEATURIZER_REGISTRY: dict[str, str] = {}


def register_featurizer(name: str, target: str) -> None:
    FEATURIZER_REGISTRY[name] = target
