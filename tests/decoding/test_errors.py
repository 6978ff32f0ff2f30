"""Clear errors for what cannot run, and the log already written stays intact byte for byte."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from decoding.loading import ArmNotSupportedError, ModelLoadError, PromptError
from decoding.models import ArmConfig
from logging_data.prompt_table import PromptTableError

GOOD_PROMPTS = [("q1", "the quick brown fox jumps over the lazy dog"), ("q2", "def add ( a , b ) : return")]


def _snapshot(root: Path) -> dict[str, bytes]:
    """The log's files (its lock files hold who wrote last, not data)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def _prompts(path: Path, rows) -> Path:
    pd.DataFrame(rows, columns=["query_id", "prompt"]).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def written_log(tiny_config, tmp_path_factory):
    from decoding.build import BuildConfig, build_log
    from decoding.session import DecodingSession

    root = tmp_path_factory.mktemp("errors")
    cfg = _config(tiny_config, "target", 1, "draft")
    log = root / "log"
    build_log(_prompts(root / "good.parquet", GOOD_PROMPTS), cfg, log, BuildConfig(calibration_context=8, calibration_repeats=1),
              session=DecodingSession(cfg, threads=1), progress=False)
    return log


def _config(tiny_config, target: str, exit_layer: int, draft: str, universal: bool = False):
    """Plain, prompt lookup, early exit at ``exit_layer`` and a draft model (``draft``: a tiny model's name)."""
    return tiny_config([ArmConfig.of("plain", "none"), ArmConfig.of("lookup", "prompt_lookup", prompt_lookup_num_tokens=2),
                        ArmConfig.of("exit1", "early_exit", assistant_early_exit=exit_layer),
                        ArmConfig.of("draft", "draft", draft=draft, universal=universal)], target=target, max_new_tokens=6)


LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 7)  # 63 words + <s> > 64 - 6
CASES = [
    # (target, exit layer, draft, extra prompt, exception, message)
    ("target", 1, "other", None, ArmNotSupportedError, r"arm 'draft': the draft's tokenizer differs from the target's \(target: .*target.*draft: .*other.*set `universal = true`"),
    ("target", 1, "no-such-draft", None, ModelLoadError, r"model path .*no-such-draft: no such file or directory"),
    ("gpt2", 1, "draft", None, ArmNotSupportedError, r"arm 'exit1': GPT2LMHeadModel .* ignores config.num_hidden_layers"),
    ("target", 4, "draft", None, ArmNotSupportedError, r"arm 'exit1': assistant_early_exit must be in \[1, 3\] for LlamaForCausalLM \(4 layers\); got 4"),
    ("target", 1, "draft", "   ", PromptTableError, r"p\.parquet: 1 prompt\(s\) empty or not text; first at row \d+ \(query_id '\w+'\): '   '"),
    ("target", 1, "draft", LONG, PromptError, r"prompt is \d+ tokens; with max_new_tokens=6 that exceeds the context of .* \(64 tokens\)"),
]


@pytest.mark.parametrize("target,exit_layer,draft,extra,exc,pattern", CASES)
def test_clear_error_and_log_intact(tiny_config, written_log, tmp_path, target, exit_layer, draft, extra, exc, pattern):
    from decoding.build import BuildConfig, build_log

    before = _snapshot(written_log)
    assert before and any(k.startswith("outcomes/part-") for k in before)
    cfg = _config(tiny_config, target, exit_layer, draft)
    rows = GOOD_PROMPTS + ([("q9", extra)] if extra is not None else [("q9", "the cat sat on the mat")])
    prompts = _prompts(tmp_path / "p.parquet", rows)
    with pytest.raises(exc, match=pattern):
        build_log(prompts, cfg, written_log, BuildConfig(calibration_context=8, calibration_repeats=1), threads=1, progress=False)
    assert _snapshot(written_log) == before
    # the same error on a fresh output leaves nothing behind
    with pytest.raises(exc, match=pattern):
        build_log(prompts, cfg, tmp_path / "fresh", BuildConfig(calibration_context=8, calibration_repeats=1), threads=1, progress=False)
    assert not (tmp_path / "fresh").exists()


def test_other_tokenizer_is_accepted_with_universal(tiny_config):
    from decoding.session import DecodingSession

    s = DecodingSession(_config(tiny_config, "target", 1, "other", universal=True), threads=1)
    assert s.arm_greedy(["the quick brown fox"], "draft")[0] is not None
