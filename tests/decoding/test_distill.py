"""decoding.distill: a tiny draft distilled from a tiny target accepts more than an untrained one;
the saved folder is plain Hugging Face; teacher cache and checkpoints resume exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import distill as D

SAME_WIDTH = D.DraftArchitecture(n_layers=1, hidden_size=None, intermediate_size=None, n_heads=None, n_kv_heads=None)


def _config(**kw) -> D.DistillConfig:
    base = dict(domain="d", max_prompts=None, max_new_tokens=12, top_k=8, steps=40, batch_size=3, lr=1e-2,
                checkpoint_every=10, gen_batch_size=4, seed=0)
    base.update(kw)
    return D.DistillConfig(**base)


@pytest.fixture(scope="module")
def target(tiny_models):
    import torch

    torch.set_num_threads(1)
    model, tok, path = D.load_target(tiny_models["target"])
    return model, tok, path


@pytest.fixture(scope="module")
def distilled(target, tmp_path_factory, tiny_sentences):
    model, tok, path = target
    out = tmp_path_factory.mktemp("distilled") / "draft"
    result = D.distill_draft(model, tok, tiny_sentences, out, config=_config(steps=60), arch=SAME_WIDTH, target_name=path, progress=False)
    return result


@pytest.fixture(scope="module")
def untrained(target, tmp_path_factory):
    model, tok, _ = target
    out = tmp_path_factory.mktemp("untrained") / "draft"
    out.mkdir()
    draft = D.init_draft(model, SAME_WIDTH, seed=0)
    D.save_draft(draft.eval(), tok, out, {"steps": 0})
    return out


def test_distillation_raises_acceptance_above_the_untrained_draft(tiny_models, distilled, untrained, tiny_sentences):
    from decoding.draft_eval import DraftEvalConfig, evaluate_drafts

    prompts = pd.DataFrame({"query_id": [f"q{i}" for i in range(len(tiny_sentences))], "prompt": tiny_sentences,
                            "domain": "d", "split": "train"})
    cfg = DraftEvalConfig(split="train", per_domain=len(tiny_sentences), max_new_tokens=12, num_assistant_tokens=4, warmup=0)
    report = evaluate_drafts(tiny_models["target"], {"untrained": str(untrained), "distilled": str(distilled.out_dir)},
                             prompts, cfg, threads=1, progress=False)
    by = {r.draft: r for r in report.results}
    assert by["distilled"].acceptance_rate > by["untrained"].acceptance_rate + 0.15
    assert by["distilled"].tokens_per_target_call > by["untrained"].tokens_per_target_call
    assert all(r.lossless for r in report.results)  # assisted output == plain greedy, token for token


def test_loss_falls_and_metadata_is_recorded(distilled):
    meta = json.loads((distilled.out_dir / D.METADATA_FILE).read_text())
    assert meta["steps"] == 60 and len(meta["losses"]) == 60
    assert np.mean(meta["losses"][-10:]) < 0.5 * np.mean(meta["losses"][:5])
    for key in ("domain", "target", "seed", "teacher_seconds", "train_seconds", "budget_seconds", "config", "architecture"):
        assert key in meta
    assert meta["domain"] == "d" and meta["seed"] == 0
    assert meta["teacher_seconds"] == pytest.approx(D.teacher_seconds(distilled.out_dir / D.TEACHER_DIR), abs=0.01) and meta["teacher_seconds"] > 0


def test_saved_draft_is_a_plain_hugging_face_folder(distilled, target):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = distilled.out_dir
    assert (out / "model.safetensors").exists() and (out / "config.json").exists() and (out / "generation_config.json").exists()
    assert not list(out.glob("*.bin")) and not list(out.rglob("*.pt"))
    m = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert m.config.model_type == "llama" and m.config.num_hidden_layers == 1
    assert m.config.tie_word_embeddings and m.lm_head.weight.data_ptr() == m.get_input_embeddings().weight.data_ptr()
    assert tok.get_vocab() == target[1].get_vocab()
    assert m.config.vocab_size == target[0].config.vocab_size
    with torch.no_grad():
        assert torch.isfinite(m(torch.tensor([[1, 5, 6]])).logits).all()


def test_interrupted_run_resumes_to_the_same_result(target, tmp_path, monkeypatch, tiny_sentences):
    from safetensors.torch import load_file

    model, tok, path = target
    cfg = _config(steps=20, checkpoint_every=5)
    straight = D.distill_draft(model, tok, tiny_sentences, tmp_path / "a", config=cfg, arch=SAME_WIDTH, target_name=path, progress=False)

    real_save = D._save_checkpoint
    calls = {"n": 0}

    def crash_after_second(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash at step 10")

    monkeypatch.setattr(D, "_save_checkpoint", crash_after_second)
    with pytest.raises(KeyboardInterrupt):
        D.distill_draft(model, tok, tiny_sentences, tmp_path / "b", config=cfg, arch=SAME_WIDTH, target_name=path, progress=False)
    # until it finishes the draft trains in a hidden folder beside --out: nothing at --out yet
    (partial,) = tmp_path.glob(".b.partial-*")
    assert json.loads((partial / D.CHECKPOINT_DIR / "state.json").read_text())["step"] == 10
    assert not (tmp_path / "b").exists()
    monkeypatch.setattr(D, "_save_checkpoint", real_save)

    def no_generation(*a, **k):
        raise AssertionError("the cached teacher should have been reused")

    monkeypatch.setattr(D, "_greedy_batch", no_generation)
    resumed = D.distill_draft(model, tok, tiny_sentences, tmp_path / "b", config=cfg, arch=SAME_WIDTH, target_name=path, progress=False)
    assert resumed.metadata["losses"] == pytest.approx(straight.metadata["losses"], rel=1e-5, abs=1e-6)
    assert not list(tmp_path.glob(".b.partial-*"))  # renamed into place
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert set(wa) == set(wb)
    for k in wa:
        assert np.allclose(wa[k].numpy(), wb[k].numpy(), atol=1e-5), k


def test_other_settings_in_an_existing_folder_are_refused(target, tmp_path, tiny_sentences):
    model, tok, path = target
    D.distill_draft(model, tok, tiny_sentences, tmp_path / "x", config=_config(steps=2, checkpoint_every=1), arch=SAME_WIDTH,
                    target_name=path, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.01 -> 0.02"):
        D.distill_draft(model, tok, tiny_sentences, tmp_path / "x", config=_config(steps=2, lr=2e-2), arch=SAME_WIDTH,
                        target_name=path, progress=False)
    # more steps is allowed: training continues
    more = D.distill_draft(model, tok, tiny_sentences, tmp_path / "x", config=_config(steps=4, checkpoint_every=1), arch=SAME_WIDTH,
                           target_name=path, progress=False)
    assert more.metadata["steps"] == 4 and len(more.metadata["losses"]) == 4


def test_narrow_draft_projects_the_target_embeddings(target):
    import torch

    model, _, _ = target
    arch = D.DraftArchitecture(n_layers=2, hidden_size=16, intermediate_size=32, n_heads=2, n_kv_heads=1)
    draft = D.init_draft(model, arch, seed=3)
    assert draft.config.hidden_size == 16 and draft.config.num_hidden_layers == 2 and draft.config.head_dim == 8
    emb, t_emb = draft.get_input_embeddings().weight.detach(), model.get_input_embeddings().weight.detach()
    assert emb.shape == (t_emb.shape[0], 16)
    # the projection keeps the centred embeddings' top-16 principal subspace: centred inner products are preserved there
    c, ct = emb - emb.mean(0), t_emb - t_emb.mean(0)
    u, s, vt = torch.linalg.svd(ct, full_matrices=False)
    best = (u[:, :16] * s[:16]) @ (u[:, :16] * s[:16]).T
    assert torch.allclose(c @ c.T, best, atol=1e-4)
    # seeded, and the global RNG is untouched
    before = torch.random.get_rng_state()
    again = D.init_draft(model, arch, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(a, b) for a, b in zip(draft.state_dict().values(), again.state_dict().values()))


def test_same_width_draft_copies_target_blocks(target):
    import torch

    model, _, _ = target
    draft = D.init_draft(model, D.DraftArchitecture(n_layers=2, hidden_size=None, intermediate_size=None, n_heads=None, n_kv_heads=None))
    last = len(model.model.layers) - 1
    for d_layer, t_layer in zip(draft.model.layers, (model.model.layers[0], model.model.layers[last])):
        for (k, a), (_, b) in zip(d_layer.state_dict().items(), t_layer.state_dict().items()):
            assert torch.equal(a, b), k
    assert torch.equal(draft.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_encoding_matches_the_decoding_backend(tiny_models, tiny_sentences):
    from transformers import AutoTokenizer

    from decoding.session import DecodingSession
    from decoding.models import ArmConfig, ModelsConfig, TargetConfig

    tok = AutoTokenizer.from_pretrained(tiny_models["target"])
    tok.chat_template = "{% for m in messages %}<s> {{ m['content'] }} </s>{% endfor %}{% if add_generation_prompt %} the{% endif %}"
    session = DecodingSession(ModelsConfig(TargetConfig(path=tiny_models["target"], device="cpu", max_new_tokens=8, chat_template="auto"),
                                           (ArmConfig("plain", "none"),)), threads=1)
    session.target.tokenizer = tok
    session.use_chat_template = True
    for s in tiny_sentences:
        assert D.encode_prompt(tok, s) == session.encode(s, max_new_tokens=8)
        assert D.encode_prompt(tok, s)[-1] == tok.convert_tokens_to_ids("the")


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=2, max_value=6))
def test_coarse_kl_is_zero_at_the_teacher_and_positive_elsewhere(seed, k):
    import torch

    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 12, generator=g) * 3
    logp = torch.log_softmax(logits, -1)
    vals, idx = torch.topk(logp, k, -1)
    assert torch.allclose(D.coarse_kl(logits, idx, vals), torch.zeros(5), atol=1e-5)
    other = torch.randn(5, 12, generator=g) * 3
    kl = D.coarse_kl(other, idx, vals)
    assert (kl >= -1e-6).all()
    # it never exceeds the full KL (coarsening loses information)
    full = (logp.exp() * (logp - torch.log_softmax(other, -1))).sum(-1)
    assert (kl <= full + 1e-5).all()


@pytest.mark.parametrize("kwargs, pattern", [
    ({"domain": ""}, "`domain` must be a non-empty string"),
    ({"domain": "d", "steps": 0}, r"`steps` must be an integer >= 1; got 0"),
    ({"domain": "d", "batch_size": 2.5}, r"`batch_size` must be an integer >= 1; got 2.5"),
    ({"domain": "d", "lr": -1.0}, r"`lr` must be a finite number > 0; got -1.0"),
    ({"domain": "d", "lr": math.nan}, r"`lr` must be a finite number > 0"),
    ({"domain": "d", "max_prompts": 0}, r"`max_prompts` must be an integer >= 1 or None; got 0"),
    ({"domain": "d", "prompt_weight": -0.1}, r"`prompt_weight` must be >= 0"),
])
def test_bad_distill_config(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        D.DistillConfig(**kwargs).validate()


@pytest.mark.parametrize("kwargs, pattern", [
    ({"n_layers": 0}, r"`n_layers` must be an integer >= 1; got 0"),
    ({"hidden_size": -4}, r"`hidden_size` must be a positive integer or None; got -4"),
    ({"reuse_embeddings": False, "freeze_embeddings": True}, "`freeze_embeddings` needs `reuse_embeddings`"),
])
def test_bad_architecture(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        D.DraftArchitecture(**kwargs).validate()


def test_heads_must_divide_the_width(target):
    with pytest.raises(ValueError, match=r"`hidden_size` 30 must be divisible by `n_heads` 4"):
        D.draft_config(target[0].config, D.DraftArchitecture(hidden_size=30, n_heads=4, n_kv_heads=2))
    with pytest.raises(ValueError, match=r"`n_heads` 4 must be divisible by `n_kv_heads` 3"):
        D.draft_config(target[0].config, D.DraftArchitecture(hidden_size=32, n_heads=4, n_kv_heads=3))


@pytest.mark.parametrize("frame, domain, split, pattern", [
    (pd.DataFrame({"prompt": ["a"]}), "d", "train", r"need column\(s\) domain; found query_id, prompt, split"),  # splits are made when absent
    (pd.DataFrame({"prompt": ["a"], "domain": ["x"], "split": ["train"]}), "d", "train", r"no prompt has domain 'd' and split 'train'; domains present: x"),
    (pd.DataFrame({"prompt": ["a"], "domain": ["d"], "split": ["test"]}), "d", "train", r"no prompt has domain 'd' and split 'train'"),
    (pd.DataFrame({"prompt": ["  "], "domain": ["d"], "split": ["train"]}), "d", "train", r"p\.parquet: 1 prompt\(s\) empty or not text; first at row 1"),
])
def test_bad_prompt_files(tmp_path, frame, domain, split, pattern):
    p = tmp_path / "p.parquet"
    frame.to_parquet(p)
    with pytest.raises(ValueError, match=pattern):
        D.read_domain_prompts(p, domain, split)


def test_missing_prompt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        D.read_domain_prompts(tmp_path / "nope.parquet", "d")


def test_sample_prompts_is_seeded_and_keeps_order():
    texts = [f"t{i}" for i in range(50)]
    a, b = D.sample_prompts(texts, 10, 7), D.sample_prompts(texts, 10, 7)
    assert a == b and len(a) == 10 and a == sorted(a, key=texts.index)
    assert D.sample_prompts(texts, None, 0) == texts


def test_load_target_never_unpickles_weights(tmp_path, tiny_models):
    """A target folder whose weights are only pytorch_model.bin is refused before torch.load runs."""
    import shutil

    from decoding.distill import load_target
    from decoding.loading import ModelLoadError

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_models["target"], folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="no \\*.safetensors weights \\(pickled weights are never loaded\\)"):
        load_target(str(folder))
    m, tok, path = load_target(tiny_models["target"])
    assert path == str(tiny_models["target"]) and not m.training


def test_domain_prompts_come_from_a_csv_with_its_own_column_names(tmp_path):
    from decoding.distill import read_domain_prompts
    from logging_data.prompt_table import PromptColumns

    p = tmp_path / "mine.csv"
    pd.DataFrame({"text": ["def f(): pass", "hello", "class A: pass"], "topic": ["code", "chat", "code"]}).to_csv(p, index=False)
    cols = PromptColumns(prompt="text", domain="topic")
    assert read_domain_prompts(p, "code", None, cols) == ["def f(): pass", "class A: pass"]
