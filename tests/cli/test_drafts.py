"""``bandit-log drafts cluster|distill|eval``: thin over the library, JSON on stdout only, one-line errors."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli

CODE = ["def add ( a , b ) : return a + b", "def sub ( a , b ) : return a - b", "def mul ( a , b ) : return a * b",
        "def neg ( a ) : return - a", "def one ( ) : return 1", "def two ( ) : return 2"]
PROSE = ["the cat sat on the mat", "the dog sat on the log", "the fox jumps over the dog",
         "the cat jumps over the fox", "a dog and a cat sat", "the quick brown fox"]


def _prompts(path, with_domain=True):
    frame = pd.DataFrame({"query_id": [f"q{i}" for i in range(12)], "prompt": CODE + PROSE,
                          "split": ["train", "train", "train", "train", "test", "test"] * 2})
    if with_domain:
        frame["domain"] = ["code"] * 6 + ["prose"] * 6
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def tiny_target(tmp_path_factory):
    """A 2-layer random Llama over a word-level tokenizer of the test prompts, saved as safetensors."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    words = sorted({w for s in CODE + PROSE for w in s.split()})
    raw = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(specials + words)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    raw.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                      tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 2
    path = tmp_path_factory.mktemp("cli_target") / "target"
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def test_cluster_writes_labels_and_keeps_the_original(tmp_path):
    src = _prompts(tmp_path / "p.parquet")
    out = tmp_path / "c.parquet"
    res = CliRunner().invoke(cli, ["drafts", "cluster", "--prompts", str(src), "--k", "2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)  # exactly one JSON document on stdout
    assert sum(doc["sizes"].values()) == 12 and doc["k"] == 2
    frame = pd.read_parquet(out)
    assert list(frame["x_domain_original"]) == ["code"] * 6 + ["prose"] * 6
    # the two domains share no words: k-means on TF-IDF separates them
    assert frame.groupby("x_domain_original")["domain"].nunique().tolist() == [1, 1]
    assert frame["domain"].nunique() == 2
    assert pd.read_parquet(src).equals(pd.read_parquet(_prompts(tmp_path / "p2.parquet")))  # input untouched


def test_cluster_without_domains_adds_one(tmp_path):
    src = _prompts(tmp_path / "p.parquet", with_domain=False)
    out = tmp_path / "c.parquet"
    res = CliRunner().invoke(cli, ["drafts", "cluster", "--prompts", str(src), "--k", "3", "--out", str(out), "--fit-split", "train"])
    assert res.exit_code == 0, res.output
    frame = pd.read_parquet(out)
    assert "x_domain_original" not in frame.columns and set(frame["domain"]) == {"c0", "c1", "c2"}
    assert res.stdout == ""  # chatter goes to stderr


@pytest.mark.parametrize("args, pattern", [
    (["--k", "1"], r"error: `k` must be an integer >= 2; got 1"),
    (["--k", "20"], r"error: k-means with k=20 needs at least 20 prompts to fit on; found 12"),
    (["--k", "2", "--same-out"], r"must differ from --prompts"),
])
def test_cluster_bad_input(tmp_path, args, pattern):
    src = _prompts(tmp_path / "p.parquet")
    before = src.read_bytes()
    out = src if "--same-out" in args else tmp_path / "c.parquet"
    args = [a for a in args if a != "--same-out"]
    res = CliRunner().invoke(cli, ["drafts", "cluster", "--prompts", str(src), "--out", str(out)] + args)
    assert res.exit_code != 0
    assert re.search(pattern, res.output), res.output
    assert src.read_bytes() == before
    if out != src:
        assert not out.exists()


def test_distill_then_eval_end_to_end(tmp_path, tiny_target):
    src = _prompts(tmp_path / "p.parquet")
    out = tmp_path / "draft-code"
    args = ["drafts", "distill", "--target", str(tiny_target), "--prompts", str(src), "--domain", "code", "--out", str(out),
            "--layers", "1", "--hidden", "target", "--steps", "20", "--batch-size", "2", "--lr", "0.01",
            "--max-new-tokens", "8", "--top-k", "8", "--checkpoint-every", "10", "--json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    meta = json.loads(res.stdout)
    assert meta["domain"] == "code" and meta["steps"] == 20 and meta["n_prompts"] == 4
    assert (out / "model.safetensors").exists() and (out / "distill.json").exists()
    # the same command again resumes (nothing left to train) and succeeds
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["steps"] == 20

    res = CliRunner().invoke(cli, ["drafts", "eval", "--target", str(tiny_target), "--draft", str(out), "--prompts", str(src),
                                   "--split", "all", "--per-domain", "2", "--max-new-tokens", "8", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["all_lossless"] is True
    got = {(r["draft"], r["domain"]) for r in doc["results"]}
    assert got == {("plain", "code"), ("plain", "prose"), ("draft-code", "code"), ("draft-code", "prose")}

    table = CliRunner().invoke(cli, ["drafts", "eval", "--target", str(tiny_target), "--draft", str(out), "--prompts", str(src),
                                     "--split", "all", "--per-domain", "1", "--max-new-tokens", "4"])
    assert table.exit_code == 0, table.output
    assert "draft-code" in table.stdout and "lossless (assisted == plain greedy on every prompt): yes" in table.stdout


@pytest.mark.parametrize("extra, pattern", [
    (["--domain", "nope"], r"error: .*no prompt has domain 'nope' and split 'train'; domains present: code, prose"),
    (["--domain", "code", "--steps", "0"], r"error: `steps` must be an integer >= 1; got 0"),
    (["--domain", "code", "--hidden", "wide"], r"expected an integer or 'target'; got 'wide'"),
])
def test_distill_bad_input(tmp_path, tiny_target, extra, pattern):


    src = _prompts(tmp_path / "p.parquet")
    res = CliRunner().invoke(cli, ["drafts", "distill", "--target", str(tiny_target), "--prompts", str(src), "--out",
                                   str(tmp_path / "o")] + extra)
    assert res.exit_code != 0
    assert re.search(pattern, res.output), res.output
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_every_drafts_command_has_an_example():
    for sub in ("distill", "cluster", "eval"):
        res = CliRunner().invoke(cli, ["drafts", sub, "--help"])
        assert res.exit_code == 0 and "Example" in res.output and "bandit-log drafts " + sub in res.output
