"""Prompt featurizers: text -> context vector x, chosen by name in a policy's config.

A featurizer is fitted on training prompts (some need no fitting), then maps any list of prompt
texts to float32 (n, d). It saves to and loads from a folder in plain formats (JSON, ``.npy``,
safetensors), never pickles. Cheap featurizers (hashed n-grams, TF-IDF + SVD) live here with
numpy and scikit-learn; model-based ones (a packaged sentence-embedding model, the target's own
mean-pooled hidden states) live in ``decoding.features`` and are registered as entry points of the
installed package (group ``draftpick.featurizers`` in ``pyproject.toml``), so that this package
neither imports nor names a higher one.

The contract a featurizer class meets (``Featurizer`` below):

- ``Class(**settings)`` stores its settings only (keyword arguments, each a JSON value);
- ``fit(texts)`` learns what it needs and returns self; ``transform`` before ``fit`` raises
  ``NotFittedError`` (featurizers that need no fitting accept ``transform`` at once);
- ``transform(texts)`` returns float32 (n, d);
- ``save(path)`` writes the fitted state into the folder ``path`` (created by the caller);
  ``Class.load(path)`` (a classmethod) reads it back and transforms identically.

``get_featurizer(name, **settings)`` builds one by registry name; ``save_featurizer`` /
``load_featurizer`` add a small ``_featurizer.json`` naming the registry entry, so a folder
loads without knowing what wrote it. ``timed_transform`` reports the cost per prompt.
"""

from __future__ import annotations

import functools
import importlib
import json
import time
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
from .featurizing import NotFittedError, check_texts, l2_rows, read_json, write_json


class UnknownFeaturizerError(KeyError):
    """No featurizer is registered under that name (prints its message without KeyError's quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@runtime_checkable
class Featurizer(Protocol):
    name: str

    def fit(self, texts: Sequence[str]) -> "Featurizer":
        """Learn what the featurizer needs from training prompts; returns self."""
        ...

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (n, d) features, one row per text."""
        ...

    def save(self, path: Path) -> None:
        """Write the fitted state into the existing folder ``path`` (no pickles).

        The class also offers ``load(path)`` as a classmethod returning a fitted featurizer.
        """
        ...


# This package's featurizers, name -> "module:Class" (imported on first use). Featurizers of higher
# packages and of plugins come from entry points (ENTRY_POINT_GROUP), not from this table.
FEATURIZER_REGISTRY: dict[str, str] = {
    "hashed": "logging_data.features:HashedNgramFeaturizer",
    "tfidf-svd": "logging_data.features:TfidfSvdFeaturizer",
    "prompt-stats": "logging_data.prompt_stats:PromptStatsFeaturizer",
}
ENTRY_POINT_GROUP = "draftpick.featurizers"
REGISTRY_FILE = "_featurizer.json"


def register_featurizer(name: str, target: str) -> None:
    """Add a featurizer at run time (``"module:Class"``); installed plugins use entry points instead."""
    FEATURIZER_REGISTRY[name] = target


@functools.lru_cache(maxsize=1)
def _entry_points() -> tuple[tuple[str, str], ...]:
    from importlib.metadata import entry_points

    return tuple((ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP))


def featurizer_targets() -> dict[str, str]:
    """Every featurizer by name: this package's table, then the installed entry points."""
    found = dict(FEATURIZER_REGISTRY)
    for name, target in _entry_points():
        found.setdefault(name, target)
    return found


def featurizer_class(name: str) -> type:
    """The class registered under ``name`` (its module imported now, not before)."""
    targets = featurizer_targets()
    if name not in targets:
        raise UnknownFeaturizerError(f"unknown featurizer {name!r}; known featurizers: {', '.join(sorted(targets))} "
                                     f"(model-based ones come from the installed package's {ENTRY_POINT_GROUP!r} "
                                     f"entry points: pip install -e . to register them)")
    module, attr = targets[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"featurizer {name!r} lives in {module}, which cannot be imported here: {exc}") from exc
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise ImportError(f"featurizer {name!r}: {module} has no {attr}") from None


def get_featurizer(name: str, **settings: Any) -> Featurizer:
    """An unfitted featurizer by registry name; ``settings`` go to its constructor.

    An unknown setting is a ``TypeError`` naming the accepted ones (never silently dropped).
    """
    cls = featurizer_class(name)
    try:
        return cls(**settings)
    except TypeError as exc:
        import inspect

        accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
        raise TypeError(f"featurizer {name!r} does not accept settings {sorted(settings)}; accepted: {', '.join(accepted) or 'none'} ({exc})") from None


def save_featurizer(featurizer: Featurizer, path: str | Path, settings: dict[str, Any] | None = None) -> None:
    """Save a fitted featurizer into folder ``path`` plus ``_featurizer.json`` naming it."""
    path = Path(path)
    if featurizer.name not in featurizer_targets():
        raise UnknownFeaturizerError(f"featurizer name {featurizer.name!r} is not registered; known: {', '.join(sorted(featurizer_targets()))}")
    path.mkdir(parents=True, exist_ok=True)
    featurizer.save(path)
    record = {"name": featurizer.name, "settings": dict(settings or {})}
    (path / REGISTRY_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_featurizer(path: str | Path) -> Featurizer:
    """Load a featurizer saved by ``save_featurizer``."""
    path = Path(path)
    record_path = path / REGISTRY_FILE
    if not record_path.is_file():
        raise FileNotFoundError(f"{path}: not a saved featurizer (no {REGISTRY_FILE})")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    cls = featurizer_class(record["name"])
    return cls.load(path)


def timed_transform(featurizer: Featurizer, texts: Sequence[str]) -> tuple[np.ndarray, float]:
    """(features float32 (n, d), wall seconds per prompt) for ``texts``; 0.0 per prompt when empty."""
    start = time.perf_counter()
    x = featurizer.transform(texts)
    seconds = time.perf_counter() - start
    return x, (seconds / len(texts) if len(texts) else 0.0)


class HashedNgramFeaturizer:
    """Hashed word n-grams and character n-grams (scikit-learn ``HashingVectorizer``).

    Needs no fitting (``fit`` only checks its input). Output: float32 (n, n_word_features +
    n_char_features), the two blocks concatenated and each row L2-normalised (all-zero rows for
    empty prompts). Signs alternate to keep hashing collisions unbiased.
    """

    name = "hashed"

    def __init__(self, n_word_features: int = 1024, n_char_features: int = 1024,
                 word_ngrams: tuple[int, int] = (1, 2), char_ngrams: tuple[int, int] = (2, 4),
                 lowercase: bool = True) -> None:
        self.n_word_features = n_word_features  # width of the hashed word n-gram block
        self.n_char_features = n_char_features  # width of the hashed char n-gram block (within word boundaries)
        self.word_ngrams = tuple(word_ngrams)  # (min, max) word n-gram lengths
        self.char_ngrams = tuple(char_ngrams)  # (min, max) character n-gram lengths
        self.lowercase = lowercase

    def settings(self) -> dict[str, Any]:
        return {"n_word_features": self.n_word_features, "n_char_features": self.n_char_features,
                "word_ngrams": list(self.word_ngrams), "char_ngrams": list(self.char_ngrams), "lowercase": self.lowercase}

    def _validate(self) -> None:
        for key in ("n_word_features", "n_char_features"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"hashed featurizer: {key} must be an int >= 1; got {v!r}")
        for key in ("word_ngrams", "char_ngrams"):
            lo_hi = getattr(self, key)
            if len(lo_hi) != 2 or not all(isinstance(v, int) for v in lo_hi) or not 1 <= lo_hi[0] <= lo_hi[1]:
                raise ValueError(f"hashed featurizer: {key} must be (min, max) ints with 1 <= min <= max; got {lo_hi!r}")

    def _vectorizers(self):
        from sklearn.feature_extraction.text import HashingVectorizer

        self._validate()
        words = HashingVectorizer(analyzer="word", ngram_range=self.word_ngrams, n_features=self.n_word_features,
                                  lowercase=self.lowercase, alternate_sign=True, norm=None, dtype=np.float64)
        chars = HashingVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams, n_features=self.n_char_features,
                                  lowercase=self.lowercase, alternate_sign=True, norm=None, dtype=np.float64)
        return words, chars

    def fit(self, texts: Sequence[str]) -> "HashedNgramFeaturizer":
        check_texts(texts, "hashed featurizer fit")
        self._validate()
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts, "hashed featurizer transform")
        words, chars = self._vectorizers()
        if not texts:
            return np.zeros((0, self.n_word_features + self.n_char_features), dtype=np.float32)
        w = words.transform(texts).toarray()
        c = chars.transform(texts).toarray()
        return l2_rows(np.hstack([w, c])).astype(np.float32)

    def save(self, path: Path) -> None:
        write_json(Path(path) / "hashed.json", self.settings())

    @classmethod
    def load(cls, path: Path) -> "HashedNgramFeaturizer":
        s = read_json(Path(path) / "hashed.json")
        return cls(n_word_features=s["n_word_features"], n_char_features=s["n_char_features"],
                   word_ngrams=tuple(s["word_ngrams"]), char_ngrams=tuple(s["char_ngrams"]), lowercase=s["lowercase"])


class TfidfSvdFeaturizer:
    """TF-IDF of word n-grams, reduced by truncated SVD (latent semantic analysis), fitted on train prompts.

    Output: float32 (n, n_components_) rows, L2-normalised when ``normalize``. Saved without
    pickle: ``vocabulary.json`` (term -> column), ``idf.npy`` float64 (n_terms,),
    ``components.npy`` float64 (n_components_, n_terms) and ``tfidf_svd.json`` (settings).
    The transform is computed here from those arrays (counts -> sublinear tf -> * idf -> L2 ->
    @ components.T), so a loaded featurizer transforms exactly as the fitted one.
    ``n_components_`` is ``n_components`` capped below the number of terms and of prompts.
    """

    name = "tfidf-svd"

    def __init__(self, n_components: int = 64, ngrams: tuple[int, int] = (1, 2), min_df: int = 1,
                 max_features: int | None = 50_000, normalize: bool = True, seed: int = 0) -> None:
        self.n_components = n_components  # requested SVD dimension
        self.ngrams = tuple(ngrams)  # (min, max) word n-gram lengths
        self.min_df = min_df  # ignore terms seen in fewer prompts
        self.max_features = max_features  # keep the most frequent terms only (None: all)
        self.normalize = normalize  # L2-normalise each output row
        self.seed = seed  # the randomized SVD's seed

    def settings(self) -> dict[str, Any]:
        return {"n_components": self.n_components, "ngrams": list(self.ngrams), "min_df": self.min_df,
                "max_features": self.max_features, "normalize": self.normalize, "seed": self.seed}

    def _counter(self, vocabulary: dict[str, int] | None = None):
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(ngram_range=self.ngrams, min_df=1 if vocabulary is not None else self.min_df,
                               max_features=None if vocabulary is not None else self.max_features,
                               vocabulary=vocabulary, lowercase=True, dtype=np.float64)

    def fit(self, texts: Sequence[str]) -> "TfidfSvdFeaturizer":
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfTransformer

        texts = check_texts(texts, "tfidf-svd featurizer fit")
        if not isinstance(self.n_components, int) or self.n_components < 1:
            raise ValueError(f"tfidf-svd featurizer: n_components must be an int >= 1; got {self.n_components!r}")
        if len(texts) < 2:
            raise ValueError(f"tfidf-svd featurizer needs at least 2 training prompts; got {len(texts)}")
        counter = self._counter()
        try:
            counts = counter.fit_transform(texts)
        except ValueError as exc:  # empty vocabulary
            raise ValueError(f"tfidf-svd featurizer: no terms found in {len(texts)} training prompts ({exc})") from None
        idf = TfidfTransformer(sublinear_tf=True).fit(counts).idf_
        vocab = {str(k): int(v) for k, v in counter.vocabulary_.items()}
        k = min(self.n_components, len(vocab) - 1, len(texts) - 1)
        if k < 1:
            raise ValueError(f"tfidf-svd featurizer: {len(vocab)} terms over {len(texts)} prompts leave no room for an SVD component")
        self.vocabulary_, self.idf_ = vocab, np.asarray(idf, dtype=np.float64)
        tfidf = self._tfidf(texts)
        svd = TruncatedSVD(n_components=k, random_state=self.seed, algorithm="randomized", n_iter=7)
        svd.fit(tfidf)
        self.components_ = np.asarray(svd.components_, dtype=np.float64)
        self.n_components_ = k
        return self

    def _tfidf(self, texts: list[str]):
        counts = self._counter(self.vocabulary_).transform(texts).tocsr()
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf
        x = counts.multiply(self.idf_[None, :]).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return x.multiply(scale[:, None]).tocsr()

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts, "tfidf-svd featurizer transform")
        if not hasattr(self, "components_"):
            raise NotFittedError("tfidf-svd featurizer is not fitted; call fit(train_prompts) first")
        if not texts:
            return np.zeros((0, self.n_components_), dtype=np.float32)
        z = np.asarray(self._tfidf(texts) @ self.components_.T)
        if self.normalize:
            z = l2_rows(z)
        return z.astype(np.float32)

    def save(self, path: Path) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError("tfidf-svd featurizer is not fitted; nothing to save")
        path = Path(path)
        write_json(path / "tfidf_svd.json", {**self.settings(), "n_components_": self.n_components_})
        write_json(path / "vocabulary.json", self.vocabulary_)
        np.save(path / "idf.npy", self.idf_, allow_pickle=False)
        np.save(path / "components.npy", self.components_, allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> "TfidfSvdFeaturizer":
        path = Path(path)
        s = read_json(path / "tfidf_svd.json")
        f = cls(n_components=s["n_components"], ngrams=tuple(s["ngrams"]), min_df=s["min_df"],
                max_features=s["max_features"], normalize=s["normalize"], seed=s["seed"])
        f.vocabulary_ = {str(k): int(v) for k, v in read_json(path / "vocabulary.json").items()}
        f.idf_ = np.load(path / "idf.npy", allow_pickle=False)
        f.components_ = np.load(path / "components.npy", allow_pickle=False)
        f.n_components_ = int(s["n_components_"])
        if f.components_.shape != (f.n_components_, len(f.vocabulary_)) or f.idf_.shape != (len(f.vocabulary_),):
            raise ValueError(f"{path}: tfidf-svd arrays disagree: components {f.components_.shape}, idf {f.idf_.shape}, "
                             f"{len(f.vocabulary_)} terms, n_components_ {f.n_components_}")
        return f


