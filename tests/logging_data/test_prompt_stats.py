"""The prompt-stats featurizer: hand-checked statistics, bins, the first-line hash, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from logging_data.features import NotFittedError, get_featurizer
from logging_data.prompt_stats import STAT_NAMES, PromptStatsFeaturizer, prompt_statistics


def _stat(text: str, name: str) -> float:
    return float(prompt_statistics(text)[STAT_NAMES.index(name)])


def test_hand_checked_statistics():
    assert _stat("a b a b", "rep_word1") == pytest.approx(0.5)  # 2 of 4 words seen before
    assert _stat("a b a b", "rep_word2") == pytest.approx(1 / 3)  # (a b) (b a) (a b): one repeat
    assert _stat("a b c", "rep_word3") == 0.0
    assert _stat("x", "rep_word1") == 0.0
    assert _stat("```py\nx\n```", "code_fence") == 1.0 and _stat("plain", "code_fence") == 0.0
    assert _stat("def f():\n    return 1\n", "indented_lines") == pytest.approx(0.5)
    assert _stat("ab12", "digits") == pytest.approx(0.5)
    assert _stat("aé", "non_ascii") == pytest.approx(0.5)
    assert _stat("", "log_chars") == 0.0


def test_more_repetition_reads_higher():
    rep = "the cat sat on the mat. the cat sat on the mat. the cat sat on the mat."
    fresh = "a quick brown fox jumps over one lazy dog while birds sing loudly outside."
    for name in ("rep_word1", "rep_word2", "rep_word3", "rep_char4"):
        assert _stat(rep, name) > _stat(fresh, name)


def test_bins_are_one_hot_per_statistic_and_the_hash_is_unit():
    texts = [f"Translate: sentence number {i} " + "word " * i for i in range(20)]
    f = PromptStatsFeaturizer(n_bins=4, n_hash=16).fit(texts)
    x = f.transform(texts)
    d = len(STAT_NAMES)
    assert x.shape == (20, d * 5 + 16) == (20, f.n_features)
    bins = x[:, d:d * 5].reshape(20, d, 4)
    assert np.allclose(bins.sum(axis=2), 1.0)
    assert np.allclose(np.linalg.norm(x[:, d * 5:], axis=1), 1.0, atol=1e-6)
    # the same first line hashes the same, a different instruction differently
    a, b = f.transform(["Translate: x", "Summarize: x"])[:, d * 5:]
    assert not np.allclose(a, b)


def test_no_bins_and_no_hash():
    f = PromptStatsFeaturizer(n_bins=0, n_hash=0).fit(["a", "b b"])
    assert f.transform(["c"]).shape == (1, len(STAT_NAMES))


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: PromptStatsFeaturizer().transform(["a"]), NotFittedError, "call fit"),
    (lambda: PromptStatsFeaturizer(n_bins=-1).fit(["a"]), ValueError, "n_bins must be an int >= 0; got -1"),
    (lambda: PromptStatsFeaturizer(n_hash=1.5).fit(["a"]), ValueError, "n_hash must be an int >= 0; got 1.5"),
    (lambda: PromptStatsFeaturizer().fit([]), ValueError, "at least one prompt"),
    (lambda: get_featurizer("prompt-stats").fit("one string"), TypeError, "wrap it in a list"),
])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_load_refuses_other_statistics(tmp_path):
    import json

    f = PromptStatsFeaturizer(n_bins=2, n_hash=2).fit(["a", "b"])
    f.save(tmp_path)
    state = json.loads((tmp_path / "prompt_stats.json").read_text())
    state["stats"] = ["other"]
    (tmp_path / "prompt_stats.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="saved for statistics"):
        PromptStatsFeaturizer.load(tmp_path)
