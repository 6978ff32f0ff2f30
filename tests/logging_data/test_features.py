"""Cheap prompt featurizers (hashed n-grams, TF-IDF + SVD), the registry, saving without pickles, cost."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logging_data.features import (
    FEATURIZER_REGISTRY,
    featurizer_targets,
    HashedNgramFeaturizer,
    NotFittedError,
    TfidfSvdFeaturizer,
    get_featurizer,
    load_featurizer,
    save_featurizer,
    timed_transform,
)

PROMPTS = [
    "def add(a, b): return the sum of two numbers",
    "def mul(a, b): return the product of two numbers",
    "translate into french: the cat sleeps on the mat",
    "translate into german: the dog runs in the park",
    "summarize the following news article about the election",
    "summarize this report on the economy in one paragraph",
]


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_hashed_needs_no_fit_and_gives_unit_rows_of_float32():
    f = get_featurizer("hashed", n_word_features=64, n_char_features=128)
    x = f.transform(PROMPTS + [""])
    assert x.shape == (7, 192) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x[:-1], axis=1), 1.0, atol=1e-6)
    assert not x[-1].any()  # an empty prompt has no n-gram
    # prompts of one domain are closer than prompts of two
    assert _cos(x[0], x[1]) > _cos(x[0], x[2]) and _cos(x[2], x[3]) > _cos(x[2], x[4])
    assert np.array_equal(x, get_featurizer("hashed", n_word_features=64, n_char_features=128).fit([]).transform(PROMPTS + [""]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=5))
def test_hashed_rows_are_unit_or_zero_for_any_text(texts):
    x = HashedNgramFeaturizer(n_word_features=32, n_char_features=32).transform(texts)
    norms = np.linalg.norm(x, axis=1)
    assert x.shape == (len(texts), 64)
    assert np.all(np.isclose(norms, 1.0, atol=1e-5) | (norms == 0))


def test_tfidf_svd_matches_scikit_learn_tfidf_then_svd():
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    f = TfidfSvdFeaturizer(n_components=3, normalize=False, seed=0).fit(PROMPTS)
    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))
    tfidf = vec.fit_transform(PROMPTS)
    svd = TruncatedSVD(n_components=3, random_state=0, algorithm="randomized", n_iter=7).fit(tfidf)
    new = ["the cat and the dog", "return the sum"]
    expected = svd.transform(vec.transform(new))
    # same vocabulary (column order may differ): compare through the term names
    order = [f.vocabulary_[t] for t in vec.get_feature_names_out()]
    assert np.allclose(f.components_[:, order], svd.components_, atol=1e-8)
    assert np.allclose(f.transform(new), expected, atol=1e-6)


def test_tfidf_svd_caps_components_and_normalises():
    f = get_featurizer("tfidf-svd", n_components=50).fit(PROMPTS)
    assert f.n_components_ == len(PROMPTS) - 1
    x = f.transform(PROMPTS)
    assert x.shape == (6, 5) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name, settings_", [("hashed", {"n_word_features": 16, "n_char_features": 16}),
                                             ("tfidf-svd", {"n_components": 3})])
def test_save_load_round_trip_without_pickles(name, settings_, tmp_path):
    f = get_featurizer(name, **settings_).fit(PROMPTS)
    save_featurizer(f, tmp_path / "feat", settings_)
    record = json.loads((tmp_path / "feat" / "_featurizer.json").read_text())
    assert record == {"name": name, "settings": settings_}
    for npy in (tmp_path / "feat").glob("*.npy"):
        np.load(npy, allow_pickle=False)  # would raise on an object (pickled) array
    g = load_featurizer(tmp_path / "feat")
    assert type(g) is type(f)
    new = PROMPTS + ["something else entirely"]
    assert np.array_equal(f.transform(new), g.transform(new))


def test_timed_transform_reports_seconds_per_prompt():
    f = get_featurizer("hashed", n_word_features=16, n_char_features=16)
    x, per = timed_transform(f, PROMPTS)
    assert x.shape[0] == len(PROMPTS) and 0 < per < 1.0
    x0, per0 = timed_transform(f, [])
    assert x0.shape == (0, 32) and per0 == 0.0


def test_registry_names_the_model_based_featurizers_without_importing_them():
    targets = featurizer_targets()  # the decoding layer's featurizers come from the package's entry points
    assert targets["minilm"] == "decoding.features:MiniLMFeaturizer" and "minilm" not in FEATURIZER_REGISTRY
    assert targets["target-hidden"] == "decoding.features:TargetHiddenFeaturizer"


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: get_featurizer("nope"), KeyError, "unknown featurizer 'nope'; known featurizers: .*hashed"),
    (lambda: get_featurizer("hashed", n_words=3), TypeError, "does not accept settings.*accepted: n_word_features"),
    (lambda: get_featurizer("hashed").transform("one string"), TypeError, "wrap it in a list"),
    (lambda: get_featurizer("hashed").transform(["ok", 3]), TypeError, "1 item.*index 1, int"),
    (lambda: get_featurizer("hashed", n_word_features=0).transform(["a"]), ValueError, "n_word_features must be an int >= 1; got 0"),
    (lambda: get_featurizer("hashed", char_ngrams=(4, 2)).fit(["a"]), ValueError, "char_ngrams must be .*got \\(4, 2\\)"),
    (lambda: get_featurizer("tfidf-svd").transform(["a"]), NotFittedError, "not fitted"),
    (lambda: get_featurizer("tfidf-svd").fit(["only one"]), ValueError, "at least 2 training prompts; got 1"),
    (lambda: get_featurizer("tfidf-svd", n_components=0).fit(PROMPTS), ValueError, "n_components must be an int >= 1; got 0"),
    (lambda: get_featurizer("tfidf-svd").fit(["", " "]), ValueError, "no terms found in 2 training prompts"),
])
def test_bad_input_is_refused_with_a_clear_message(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_load_featurizer_refuses_a_folder_that_is_not_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved featurizer"):
        load_featurizer(tmp_path)
    f = get_featurizer("tfidf-svd", n_components=2).fit(PROMPTS)
    save_featurizer(f, tmp_path / "f")
    np.save(tmp_path / "f" / "idf.npy", np.zeros(3))
    with pytest.raises(ValueError, match="tfidf-svd arrays disagree"):
        load_featurizer(tmp_path / "f")
