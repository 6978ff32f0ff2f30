"""``bandit-log build`` and ``bandit-log decode`` end to end on tiny models (in-process CliRunner)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from logging_data import open_log, validate_log


def _tiny():
    spec = importlib.util.spec_from_file_location("shared_test_models", Path(__file__).parents[1] / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import torch

    t = _tiny()
    root = tmp_path_factory.mktemp("cli_decode")
    tok = t.make_tokenizer(t.SENTENCES)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        target = t._save(t._llama(len(tok), 2), tok, root / "target")
    from decoding.models import ArmConfig, ModelsConfig, TargetConfig, write_models_file

    models = write_models_file(root / "models.toml", ModelsConfig.of(
        TargetConfig(path=target, device="cpu", max_new_tokens=6, chat_template=False),
        [ArmConfig.of("plain", "none"), ArmConfig.of("lookup", "prompt_lookup", prompt_lookup_num_tokens=2),
         ArmConfig.of("exit1", "early_exit", assistant_early_exit=1)]))
    prompts = root / "prompts.parquet"
    pd.DataFrame({"query_id": ["a", "b", "c"], "prompt": ["the quick brown fox", "def add ( a , b ) :", "the cat sat on the mat"],
                  "domain": ["x", "code", "x"], "split": ["train", "train", "test"]}).to_parquet(prompts)
    return {"root": root, "models": models, "prompts": prompts}


def test_help_has_examples():
    r = CliRunner().invoke(cli, ["build", "--help"])
    assert r.exit_code == 0 and "bandit-log build prompts.parquet --models models.toml --out LOG" in r.output
    r = CliRunner().invoke(cli, ["decode", "--help"])
    assert r.exit_code == 0 and "bandit-log decode --policy" in r.output


def test_build_then_decode(files):
    from bandit.policies.vw import VWConfig
    from bandit.runs import train_run

    log = files["root"] / "log"
    runner = CliRunner()
    r = runner.invoke(cli, ["build", str(files["prompts"]), "--models", str(files["models"]), "--out", str(log), "--split", "train",
                            "--reward", "speedup_count", "--threads", "1", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["n_rows_written"] == 6 and doc["n_lossless_failures"] == 0 and doc["n_prompts"] == 2
    assert validate_log(log).ok
    meta = open_log(log).metadata
    assert "bandit-log build" in meta.extra["command"] and "--split train" in meta.extra["command"]
    # options left at their defaults are not written as if they had been given
    assert "--repeats" not in meta.extra["command"] and "--alignment-only" not in meta.extra["command"]
    assert "--batch-size" not in meta.extra["command"]
    assert meta.reward.kind == "speedup_count"

    run = train_run(log, VWConfig(featurizer="hashed", n_passes=1), files["root"] / "run", split=None, progress=False,
                    featurizer_settings={"n_word_features": 32, "n_char_features": 32})
    r = runner.invoke(cli, ["decode", "--policy", str(run.path), "--models", str(files["models"]), str(files["prompts"]),
                            "--out", str(log), "--sample", "--seed", "2", "--threads", "1", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["n_decisions"] == 3 and doc["n_lossless_failures"] == 0 and sum(doc["arm_counts"].values()) == 3
    d = open_log(log).read("decisions")
    assert len(d) == 3 and ((d["propensity"] > 0) & (d["propensity"] <= 1)).all() and validate_log(log).ok


@pytest.mark.parametrize("args,pattern", [
    (["--reward", "speedup_wall", "--alpha", "0.5"], "--alpha applies to alignment rewards only"),
    (["--reward", "align_lcs"], "reward metric align_lcs is undefined for prompt-lookup arm"),
    (["--limit", "0"], "limit must be >= 1; got 0"),
])
def test_build_bad_options_one_line_errors(files, tmp_path, args, pattern):
    r = CliRunner().invoke(cli, ["build", str(files["prompts"]), "--models", str(files["models"]), "--out", str(tmp_path / "l")] + args)
    assert r.exit_code == 1 and pattern in r.stderr and r.stderr.startswith("error: ") and r.stdout == ""
    assert not (tmp_path / "l").exists()


def test_missing_models_file(files, tmp_path):
    r = CliRunner().invoke(cli, ["build", str(files["prompts"]), "--models", str(tmp_path / "none.toml"), "--out", str(tmp_path / "l")])
    assert r.exit_code == 1 and "none.toml: no such file" in r.stderr
