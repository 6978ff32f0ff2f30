"""The ``prompt-stats`` featurizer: what a prompt says about whether the *output* will copy from it.

Prompt lookup pays when the target's continuation repeats spans of the prompt; plain decoding is
best when nothing will be copied. Bags of n-grams describe *what* a prompt is about; these
statistics describe its *shape* (numpy only, microseconds per prompt):

- size: log characters, words, lines, mean line length;
- self-repetition: the share of repeated word 1-, 2- and 3-grams and of repeated character
  4-grams (a prompt that repeats itself tends to be continued by more of the same);
- code shape: code fences, indented lines, ``def``/``class``/``return``/``import`` keywords,
  brackets and operators, identifiers with ``_`` or camelCase, quotes, docstring quotes;
- script: non-ASCII, digit, upper-case and punctuation shares;
- the instruction: the first line's words, hashed into ``n_hash`` buckets (the template of the
  task: "Translate...", "Complete...", "What does...").

Linear policies cannot bend a statistic, so each one is also given as a one-hot of its
training-quantile bin (``n_bins`` per statistic, edges fitted on the training prompts): an
additive, piecewise-constant model in each statistic. Output: float32 (n, n_stats * (1 +
n_bins) + n_hash): standardised statistics, their bins, the hashed first line. Saved as
``prompt_stats.json`` (settings, means, scales, bin edges); nothing pickled.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .featurizing import NotFittedError, check_texts

STAT_NAMES: tuple[str, ...] = (
    "log_chars", "log_words", "log_lines", "mean_line_len",
    "rep_word1", "rep_word2", "rep_word3", "rep_char4",
    "code_fence", "indented_lines", "code_keywords", "brackets_ops", "identifiers", "quotes", "docstring",
    "non_ascii", "digits", "upper", "punct",
)
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_KEYWORDS = re.compile(r"\b(def|class|return|import|from|self|if|for|while|lambda|None|True|False)\b")
_IDENT = re.compile(r"\b(?:[a-z]+_[a-z0-9_]+|[a-z]+[A-Z][a-zA-Z0-9]*)\b")


def _repeated_share(items: list) -> float:
    """Share of items that occurred earlier in the sequence (0 for fewer than 2 items)."""
    if len(items) < 2:
        return 0.0
    return 1.0 - len(set(items)) / len(items)


def prompt_statistics(text: str) -> np.ndarray:
    """float64 (len(STAT_NAMES),): the statistics of one prompt, in ``STAT_NAMES`` order."""
    n = max(len(text), 1)
    words = _WORD.findall(text)
    lines = text.splitlines() or [""]
    lower = [w.lower() for w in words]
    grams2 = list(zip(lower, lower[1:]))
    grams3 = list(zip(lower, lower[1:], lower[2:]))
    chars4 = [text[i:i + 4] for i in range(0, max(len(text) - 3, 0))]
    nonblank = [ln for ln in lines if ln.strip()] or [""]
    return np.array([
        math.log1p(len(text)), math.log1p(len(words)), math.log1p(len(lines)),
        math.log1p(sum(len(ln) for ln in nonblank) / len(nonblank)),
        _repeated_share(lower), _repeated_share(grams2), _repeated_share(grams3), _repeated_share(chars4),
        float("```" in text), sum(1 for ln in nonblank if ln[:1] in (" ", "\t")) / len(nonblank),
        len(_KEYWORDS.findall(text)) / max(len(words), 1),
        sum(text.count(c) for c in "()[]{}=:<>+-*/%") / n,
        len(_IDENT.findall(text)) / max(len(words), 1),
        sum(text.count(c) for c in "'\"`") / n, float('"""' in text or "'''" in text),
        sum(1 for c in text if ord(c) > 127) / n, sum(c.isdigit() for c in text) / n,
        sum(c.isupper() for c in text) / n, sum(1 for c in text if not c.isalnum() and not c.isspace()) / n,
    ], dtype=np.float64)


def _first_line_hash(text: str, n_hash: int) -> np.ndarray:
    out = np.zeros(n_hash, dtype=np.float64)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    words = [w.lower() for w in _WORD.findall(first)][:12]
    for w in words:
        out[zlib.crc32(w.encode("utf-8")) % n_hash] += 1.0
    norm = np.linalg.norm(out)
    return out / norm if norm > 0 else out


class PromptStatsFeaturizer:
    """Prompt statistics with quantile bins and the hashed first line (see the module docstring)."""

    name = "prompt-stats"

    def __init__(self, n_bins: int = 8, n_hash: int = 64) -> None:
        self.n_bins = n_bins  # quantile bins per statistic (0: standardised statistics only)
        self.n_hash = n_hash  # buckets of the hashed first line (0: none)

    def settings(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "n_hash": self.n_hash}

    def _validate(self) -> None:
        for key in ("n_bins", "n_hash"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"prompt-stats featurizer: {key} must be an int >= 0; got {v!r}")

    @staticmethod
    def _texts(texts: Sequence[str], what: str) -> list[str]:
        return check_texts(texts, what)

    def fit(self, texts: Sequence[str]) -> "PromptStatsFeaturizer":
        texts = self._texts(texts, "prompt-stats featurizer fit")
        self._validate()
        if not texts:
            raise ValueError("prompt-stats featurizer fit needs at least one prompt; got none")
        s = np.stack([prompt_statistics(t) for t in texts])
        self.mean_ = s.mean(axis=0)
        scale = s.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        qs = np.linspace(0, 1, self.n_bins + 1)[1:-1]
        self.edges_ = np.quantile(s, qs, axis=0).T if self.n_bins > 1 else np.zeros((len(STAT_NAMES), 0))
        return self

    @property
    def n_features(self) -> int:
        return len(STAT_NAMES) * (1 + (self.n_bins if self.n_bins > 1 else 0)) + self.n_hash

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        texts = self._texts(texts, "prompt-stats featurizer transform")
        if not hasattr(self, "mean_"):
            raise NotFittedError("prompt-stats featurizer: call fit(train_prompts) before transform")
        if not texts:
            return np.zeros((0, self.n_features), dtype=np.float32)
        s = np.stack([prompt_statistics(t) for t in texts])
        blocks = [(s - self.mean_) / self.scale_]
        if self.n_bins > 1:
            onehot = np.zeros((len(texts), len(STAT_NAMES), self.n_bins))
            for j in range(len(STAT_NAMES)):
                onehot[np.arange(len(texts)), j, np.searchsorted(self.edges_[j], s[:, j], side="right")] = 1.0
            blocks.append(onehot.reshape(len(texts), -1))
        if self.n_hash:
            blocks.append(np.stack([_first_line_hash(t, self.n_hash) for t in texts]))
        return np.hstack(blocks).astype(np.float32)

    def save(self, path: Path) -> None:
        state = {**self.settings(), "stats": list(STAT_NAMES), "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                 "edges": self.edges_.tolist()}
        (Path(path) / "prompt_stats.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "PromptStatsFeaturizer":
        file = Path(path) / "prompt_stats.json"
        if not file.is_file():
            raise FileNotFoundError(f"{path}: missing prompt_stats.json")
        state = json.loads(file.read_text(encoding="utf-8"))
        if state.get("stats") != list(STAT_NAMES):
            raise ValueError(f"{file}: saved for statistics {state.get('stats')}; this version computes {list(STAT_NAMES)}")
        f = cls(n_bins=int(state["n_bins"]), n_hash=int(state["n_hash"]))
        f._validate()
        f.mean_ = np.asarray(state["mean"], dtype=np.float64)
        f.scale_ = np.asarray(state["scale"], dtype=np.float64)
        f.edges_ = np.asarray(state["edges"], dtype=np.float64).reshape(len(STAT_NAMES), -1)
        return f
