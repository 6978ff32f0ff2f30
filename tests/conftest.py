"""Fixtures shared by every test folder: tiny real models built from configs in code.

Saved as safetensors under a temporary folder:

- ``target``: a 4-layer random Llama over a small word-level tokenizer (built offline with
  ``tokenizers``), no chat template.
- ``draft``: a 1-layer Llama sharing the target's tokenizer, with the target's embeddings, first
  layer, final norm and head (so it agrees with the target often enough to have accepted tokens).
- ``other``: a 1-layer Llama over a different tokenizer (different vocabulary).
- ``gpt2``: a 2-layer GPT-2 sharing the target's tokenizer (for early-exit refusal).
- ``head``: an untrained drafting head on the target's hidden states (``decoding.heads``), over its
  whole vocabulary (a folder: head.json + head.safetensors).
- ``datastore``: a retrieval store of the sentences as the target's token ids (``decoding.datastore``).

The head and the datastore record the target they were made for (``made_for``, as
``decoding.artifacts.target_identity`` gives it for the saved ``target``), as the project's own
writers do: a test that loads them goes through the identity check a user's artifacts go through.

Weights are initialised under ``torch.random.fork_rng`` so the global RNG is left as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N: one OpenMP thread per worker, or N x 2 threads spin on 2 cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a draft model proposes tokens and the target model checks them",
    "translate this sentence into french please",
    "summarize the following text in one line",
    "def add ( a , b ) : return a + b",
    "the cat sat on the mat and the dog sat on the log",
]
OTHER_SENTENCES = ["zebra yak xylophone walrus", "violin umbrella tiger snake", "the quick brown fox"]


def make_tokenizer(sentences, max_len=64):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    words = sorted({w for s in sentences for w in s.split()})
    vocab = {t: i for i, t in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>", model_max_length=max_len
    )


def _llama(vocab, layers, ctx=64):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=ctx, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg)


def _save(model, tok, path: Path) -> str:
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 2
    model.generation_config.bos_token_id = 1
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return str(path)


def _head(target, vocab: int):
    """An untrained (seeded) drafting head on the tiny target's hidden states, over its whole vocabulary."""
    from decoding.heads import feature_head

    return feature_head(target.config.hidden_size, list(range(vocab)), n_blocks=1, expansion=1)


def _save_head(head, path: Path, made_for=None) -> str:
    from decoding.heads import save_head

    return str(save_head(head, path, made_for=made_for))


def made_for(model, path: str) -> dict:
    """The ``made_for`` identity of the saved model at ``path`` (``decoding.artifacts.target_identity``
    of it as a models file naming ``path`` loads it: its tokenizer read back from ``path``)."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from decoding.artifacts import target_identity

    return target_identity(SimpleNamespace(model=model, tokenizer=AutoTokenizer.from_pretrained(path), spec=path))


@pytest.fixture(scope="session")
def tiny_sentences() -> list[str]:
    """The sentences the tiny models' tokenizer was built from: every word of them is in its vocabulary."""
    return list(SENTENCES)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("tiny_models")
    tok = make_tokenizer(SENTENCES)
    other_tok = make_tokenizer(OTHER_SENTENCES)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        target = _llama(len(tok), 4)
        draft = _llama(len(tok), 1)
        sd = target.state_dict()
        draft.load_state_dict({k: v for k, v in sd.items() if not k.startswith("model.layers.") or k.startswith("model.layers.0.")})
        other = _llama(len(other_tok), 1)
        gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=1, eos_token_id=2, pad_token_id=0))
        head = _head(target, len(tok))
    from decoding.datastore import Datastore

    store = Datastore([tok(s, add_special_tokens=False)["input_ids"] + [2] for s in SENTENCES], max_ngram=3, max_chain=4)
    target_path = _save(target, tok, root / "target")
    identity = made_for(target, target_path)
    return {
        "head": _save_head(head, root / "head", made_for=identity),
        "datastore": str(store.save(root / "datastore", made_for=identity)),
        "target": target_path,
        "draft": _save(draft, tok, root / "draft"),
        "other": _save(other, other_tok, root / "other"),
        "gpt2": _save(gpt2, tok, root / "gpt2"),
        "root": str(root),
    }


# -- models files over the tiny models (decoding.models writes them; bad-input tests keep their text) --
def tiny_target(tiny_models: dict[str, str], target: str = "target", max_new_tokens: int = 8, **settings):
    """The ``[target]`` of a tiny model (``target`` names one of ``tiny_models``): cpu, no chat template."""
    from decoding.models import TargetConfig

    return TargetConfig(path=tiny_models[target], device="cpu", max_new_tokens=max_new_tokens, chat_template=False, **settings)


@pytest.fixture(scope="session")
def tiny_config(tiny_models):
    """``tiny_config(arms, target="target", max_new_tokens=8, **target_settings)`` -> a ``ModelsConfig`` over the
    tiny models, ``arms`` built with ``ArmConfig.of``; relative paths resolve in the tiny models' folder."""
    from decoding.models import ModelsConfig

    def make(arms, target: str = "target", max_new_tokens: int = 8, **settings):
        return ModelsConfig.of(tiny_target(tiny_models, target, max_new_tokens, **settings), arms, base_dir=tiny_models["root"])

    return make


@pytest.fixture(scope="session")
def write_tiny_models(tiny_config):
    """``write_tiny_models(path, arms, target="target", max_new_tokens=8, **target_settings)`` -> ``path``, a
    models file over the tiny models (``decoding.models.write_models_file``; give arms absolute paths)."""
    from decoding.models import write_models_file

    def write(path, arms, **kw) -> Path:
        return write_models_file(path, tiny_config(arms, **kw))

    return write


def lookup_grid(ngrams=(1, 2), tokens=(2, 5)):
    """Plain decoding and one prompt-lookup arm per n-gram size x draft tokens, named ``n{n}k{k}``:
    arms whose every count replays exactly."""
    from decoding.models import ArmConfig

    return (ArmConfig.of("plain", "none"), *(ArmConfig.of(f"n{n}k{k}", "prompt_lookup", max_matching_ngram_size=n,
                                                          prompt_lookup_num_tokens=k) for n in ngrams for k in tokens))
