"""What every prompt featurizer shares: its not-fitted error, the check of its texts, its state files.

The featurizers of ``logging_data.features`` and ``logging_data.prompt_stats`` and the model-based ones of
``decoding.features`` build on it; the registry that names them (``logging_data.features``) imports
them by name, so this module sits below both and imports neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .files import write_text_atomic


class NotFittedError(RuntimeError):
    """A featurizer was used before ``fit``."""


def check_texts(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{what} takes a sequence of prompt strings; got one string (wrap it in a list)")
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{what} takes strings; {len(bad)} item(s) are not (first: index {bad[0]}, {type(out[bad[0]]).__name__})")
    return out


def l2_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: missing {path.name}")
    return json.loads(path.read_text(encoding="utf-8"))
