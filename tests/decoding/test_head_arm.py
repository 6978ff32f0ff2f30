"""The ``head`` arm kind end to end: a models file names a head trained on the target's hidden
states; ``bandit-log build`` measures it (through the project's loop, output checked against
plain greedy), calibration prices its step, a policy that plays it decodes with it; bad heads
and rewards it cannot have are refused by name before anything decodes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli
from decoding.models import ArmConfig
from logging_data import open_log, validate_log


def _arms(head: str) -> tuple[ArmConfig, ...]:
    return (ArmConfig.of("plain", "none"), ArmConfig.of("lookup", "prompt_lookup", prompt_lookup_num_tokens=2),
            ArmConfig.of("head", "head", head=head, num_assistant_tokens=2))


@pytest.fixture(scope="module")
def files(tmp_path_factory, write_tiny_models, tiny_models):
    root = tmp_path_factory.mktemp("head_arm")
    models = write_tiny_models(root / "models.toml", _arms(tiny_models["head"]))
    prompts = root / "prompts.parquet"
    pd.DataFrame({"query_id": ["a", "b", "c"], "prompt": ["the quick brown fox jumps over the lazy dog the quick brown",
                                                          "def add ( a , b ) : return a + b def add (", "the cat sat on the mat"],
                  "domain": ["x", "code", "x"], "split": ["train", "train", "test"]}).to_parquet(prompts)
    return {"root": root, "models": models, "prompts": prompts}


def test_build_measures_a_head_arm_and_decode_plays_it(files):
    from bandit.policies.baselines import FixedConfig
    from bandit.runs import train_run

    log = files["root"] / "log"
    runner = CliRunner()
    r = runner.invoke(cli, ["build", str(files["prompts"]), "--models", str(files["models"]), "--out", str(log),
                            "--reward", "speedup_count", "--threads", "1", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["n_rows_written"] == 9 and doc["n_lossless_failures"] == 0
    assert validate_log(log).ok
    opened = open_log(log)
    head = next(a for a in opened.metadata.arms if a.name == "head")
    assert head.kind == "head" and head.cost > 0 and head.attrs["draft_tokens"] == 2 and head.attrs["n_params_m"] > 0
    rows = opened.read("outcomes").set_index("arm").loc["head"]
    assert rows["lossless"].all() and (rows["draft_calls"] > 0).all() and rows["align_accept"].isna().all()
    assert (rows["accepted_tokens"] == rows["n_new_tokens"] - rows["target_calls"]).all()

    run = train_run(log, FixedConfig(arm="head"), files["root"] / "run", split=None, progress=False)
    r = runner.invoke(cli, ["decode", "--policy", str(run.path), "--models", str(files["models"]), str(files["prompts"]),
                            "--out", str(log), "--threads", "1", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["arm_counts"] == {"head": 3} and doc["n_lossless_failures"] == 0
    assert validate_log(log).ok


def _wrong_head(tmp_path: Path, tiny_models: dict) -> str:
    """A head trained on a sibling of the target with the same tokenizer and hidden size 16, recording it."""
    from decoding.heads import feature_head, save_head

    sibling = {**json.loads((Path(tiny_models["head"]) / "head.json").read_text())["made_for"],
               "target": str(tmp_path / "sibling"), "hidden_size": 16}
    return str(save_head(feature_head(16, [0, 1, 2], n_blocks=1, expansion=1), tmp_path / "wrong", made_for=sibling))


@pytest.mark.parametrize("make,error,pattern", [
    (lambda tmp, _: str(tmp / "nowhere"), "ModelLoadError", r"arm 'head': cannot load the head at .*nowhere: head .*nowhere: expected head.json and head.safetensors"),
    (_wrong_head, "ArmNotSupportedError", r"arm 'head': the head at .*wrong reads hidden states of another size: it was made for "
                                          r".*sibling \(llama, hidden size 16.*the target is .*hidden size 32"),
])
def test_a_head_that_cannot_run_is_refused_at_load(tiny_config, tiny_models, tmp_path, make, error, pattern):
    from decoding import loading
    from decoding.session import DecodingSession

    config = tiny_config(_arms(make(tmp_path, tiny_models)))
    with pytest.raises(getattr(loading, error), match=pattern):
        DecodingSession(config, threads=1)


@pytest.mark.parametrize("reward,pattern", [
    ("align_lcs", r"align_lcs is undefined for prompt-lookup arm\(s\) lookup; hidden-state head arm\(s\) head \(they have no output"),
    ("align_accept", r"align_accept is undefined for hidden-state head arm\(s\) head \(they have no output of their own and their "
                     r"counts need decoding\); use a measured reward"),
])
def test_rewards_a_head_cannot_have_are_refused_before_decoding(files, tmp_path, reward, pattern):
    r = CliRunner().invoke(cli, ["build", str(files["prompts"]), "--models", str(files["models"]), "--out", str(tmp_path / "log"),
                                 "--reward", reward])
    assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1
    import re

    assert re.search(pattern, r.output), r.output
    assert not (tmp_path / "log").exists()


def test_a_head_arm_needs_its_folder(toml_for):
    from decoding.models import ModelsConfigError, parse_models_config

    with pytest.raises(ModelsConfigError, match=r"arm 'h': kind 'head' needs `head` \(a folder holding head.json"):
        parse_models_config(toml_for('[[arms]]\nname = "h"\nkind = "head"\n'))
    with pytest.raises(ModelsConfigError, match=r"'draft' do not apply to kind 'head'"):
        parse_models_config(toml_for('[[arms]]\nname = "h"\nkind = "head"\nhead = "x"\ndraft = "y"\n'))


@pytest.mark.parametrize("kind", ["head", "lookup_head"])
@pytest.mark.parametrize("value,pattern", [("1.0", r"must be in \[0, 1\); got 1.0"), ("-0.2", r"must be in \[0, 1\); got -0.2"),
                                           ('"high"', r"must be int or float; got 'high'")])
def test_a_heads_confidence_threshold_is_checked(toml_for, kind, value, pattern):
    from decoding.models import ModelsConfigError, parse_models_config

    with pytest.raises(ModelsConfigError, match=r"arm 'h': `assistant_confidence_threshold` " + pattern):
        parse_models_config(toml_for(f'[[arms]]\nname = "h"\nkind = "{kind}"\nhead = "x"\nassistant_confidence_threshold = {value}\n'))


def test_a_gated_head_records_its_threshold_and_drafts_with_it(tiny_config, tiny_models):
    from decoding.session import DecodingSession

    config = tiny_config([ArmConfig.of("g", "lookup_head", head=tiny_models["head"], assistant_confidence_threshold=0.4),
                          ArmConfig.of("h", "head", head=tiny_models["head"])])
    gated, ungated = config.to_log_arms()
    assert gated.attrs["confidence"] == 0.4 and "confidence" not in ungated.attrs
    session = DecodingSession(config)  # loads every arm's head
    assert session.drafter(config.arm("g")).inner.confidence == 0.4
    assert session.drafter(config.arm("h")).confidence == 0.0


def test_lookup_then_head_proposes_lookup_where_it_matches_and_the_head_elsewhere(session, tiny_models):
    import torch

    from decoding.arms.lookup_head import LookupThenHead
    from decoding.heads import HeadDraft, load_head
    from decoding.specloop import PromptLookup

    head = HeadDraft(load_head(tiny_models["head"]), session.target.model, 2)
    drafter = LookupThenHead(PromptLookup(3, 2, session.eos_ids), head)
    drafter.reset([5, 6, 7])
    assert drafter.propose([5, 6, 7]) == [] and drafter.draft_calls == 0  # no match and no state yet: nothing
    drafter.accepted([5, 6, 7, 5], torch.zeros(head.head.hidden))
    assert drafter.propose([5, 6, 7, 5]) == [6, 7, 5] and drafter.draft_calls == 0  # lookup matched: its candidates
    drafter.accepted([5, 6, 7, 8], torch.zeros(head.head.hidden))
    chain = drafter.propose([5, 6, 7, 8])
    assert len(chain) == 2 and drafter.draft_calls == 2  # no match: the head's two tokens
