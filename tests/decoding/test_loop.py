"""The decision loop on tiny models with a real Vowpal Wabbit run trained on a built log."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from logging_data import open_log, validate_log

PROMPTS = [
    ("q1", "the quick brown fox jumps over the lazy dog the quick brown", "creative", "train"),
    ("q2", "def add ( a , b ) : return a + b def add (", "code", "train"),
    ("q3", "the cat sat on the mat and the dog sat on the", "creative", "test"),
]


@pytest.fixture(scope="module")
def built(session, all_arms_config, tmp_path_factory):
    """A full-information log (speedup_count reward) and a VW run trained on it."""
    from bandit.policies.vw import VWConfig
    from bandit.runs import train_run
    from decoding.build import BuildConfig, build_log, reward_definition

    root = tmp_path_factory.mktemp("loop")
    prompts = root / "prompts.parquet"
    pd.DataFrame(PROMPTS, columns=["query_id", "prompt", "domain", "split"]).to_parquet(prompts)
    log = root / "log"
    build_log(prompts, all_arms_config, log, BuildConfig(reward=reward_definition("speedup_count"), calibration_context=16,
                                                             calibration_repeats=2), session=session, progress=False)
    run = train_run(log, VWConfig(featurizer="hashed", n_passes=1, epsilon=0.2), root / "run", split=None, progress=False,
                    featurizer_settings={"n_word_features": 64, "n_char_features": 64})
    return {"prompts": prompts, "log": log, "run": run.path, "root": root}


def test_greedy_decode_appends_decisions_to_the_built_log(session, all_arms_config, built):
    from bandit.runs import load_run
    from decoding.loop import DecodeConfig, decode_prompts

    run = load_run(built["run"])
    s = decode_prompts(run, all_arms_config, built["prompts"], built["log"], DecodeConfig(greedy=True), session=session, progress=False)
    assert (s.n_decisions, s.n_skipped, s.n_lossless_failures, s.learned) == (3, 0, 0, False)
    assert validate_log(built["log"]).ok
    d = open_log(built["log"]).read("decisions").sort_values("query_id")
    assert (d["propensity"] == 1.0).all() and d["lossless"].all() and (d["policy_id"] == "run").all()
    probs = run.probabilities(pd.DataFrame({"query_id": [p[0] for p in PROMPTS], "prompt": [p[1] for p in PROMPTS]}))
    assert d["arm"].tolist() == [run.arm_names[int(np.argmax(p))] for p in probs]
    assert (d["choose_time_s"] > 0).all() and (d["reward"] == d["x_speedup_count"]).all()
    assert (d["accepted_tokens"] == d["n_new_tokens"] - d["target_calls"]).all()
    # again: every (query_id, policy_id) is there, nothing is decoded
    s2 = decode_prompts(run, all_arms_config, built["prompts"], built["log"], DecodeConfig(greedy=True), session=session, progress=False)
    assert (s2.n_decisions, s2.n_skipped) == (0, 3)


def test_sampled_decode_logs_exact_propensities_and_learns(session, all_arms_config, built, tmp_path):
    from bandit.runs import load_run
    from decoding.loop import DecodeConfig, decode_prompts

    run = load_run(built["run"])
    model_file = built["run"] / "model" / "model.vw"
    before = model_file.read_bytes()
    frame = pd.DataFrame({"query_id": [p[0] for p in PROMPTS], "prompt": [p[1] for p in PROMPTS]})
    probs = run.probabilities(frame)
    out = tmp_path / "new-log"
    cfg = DecodeConfig(greedy=False, seed=3, policy_id="vw-sampled")
    s = decode_prompts(run, all_arms_config, built["prompts"], out, cfg, session=session, progress=False)
    assert s.n_decisions == 3 and not s.learned and model_file.read_bytes() == before
    d = open_log(out).read("decisions").set_index("query_id")
    for i, (qid, *_rest) in enumerate(PROMPTS):
        a = all_arms_config.arm_names.index(d.at[qid, "arm"])
        assert d.at[qid, "propensity"] == probs[i, a]  # exact, never rounded
    # learning online: each decision's learn_one update is saved into the run folder at the end
    cfg = DecodeConfig(greedy=False, seed=3, learn=True, policy_id="vw-online")
    s = decode_prompts(run, all_arms_config, built["prompts"], out, cfg, session=session, progress=False)
    assert s.n_decisions == 3 and s.learned
    assert model_file.read_bytes() != before
    assert open_log(out).metadata.reward.kind == "speedup_count"


def test_lossless_mismatch_is_flagged_and_counted(session, all_arms_config, built, tmp_path, monkeypatch, capsys):
    from bandit.runs import load_run
    from decoding.loop import DecodeConfig, decode_prompts

    real = session.assisted

    def corrupt(*args, **kwargs):
        out = real(*args, **kwargs)
        return replace(out, tokens=out.tokens[:-1] + (0,), lossless=False, first_mismatch=len(out.tokens) - 1)

    monkeypatch.setattr(session, "assisted", corrupt)
    monkeypatch.setattr(session, "plain", lambda ids, **kw: real(ids, None, **kw))
    run = load_run(built["run"])
    # force a non-"none" arm: a stand-in policy object with the run's interface, always picking "lookup"
    stand_in = replace_policy(run, all_arms_config.arm_names.index("lookup"))
    s = decode_prompts(stand_in, all_arms_config, built["prompts"], tmp_path / "l", DecodeConfig(), session=session, progress=False)
    assert s.n_lossless_failures == 3
    d = open_log(tmp_path / "l").read("decisions")
    assert (~d["lossless"].astype(bool)).all()
    assert "LOSSLESS CHECK FAILED: query_id=q1 arm=lookup" in capsys.readouterr().err


def replace_policy(run, arm_index):
    class Fixed:
        def probabilities(self, x):
            p = np.zeros((len(x), len(run.arm_names)))
            p[:, arm_index] = 1.0
            return p

        def act(self, x, rng):
            return np.full(len(x), arm_index, dtype=np.int64), np.ones(len(x))

    class StandIn:
        arm_names = run.arm_names
        path = run.path
        policy = Fixed()

        def features(self, prompts):
            return run.features(prompts)

    return StandIn()


def test_arms_of_the_run_must_match_the_models_file(session, built, tiny_config):
    from bandit.runs import load_run
    from decoding.loop import decode_prompts
    from decoding.models import ArmConfig

    other = tiny_config([ArmConfig.of("plain", "none")])
    with pytest.raises(ValueError, match=r"trained on arms plain, lookup, exit1, draft, draft-heur; the models file has plain"):
        decode_prompts(load_run(built["run"]), other, built["prompts"], built["root"] / "x", session=session, progress=False)
    assert not (built["root"] / "x").exists()


def test_a_decodes_own_calibration_on_a_busy_machine_warns_and_decodes(session, all_arms_config, built, tmp_path, monkeypatch):
    """A decode into a new log times its own step costs first; a noisy machine must not end the run
    (like a build's own calibration): it warns with the spreads, keeps the medians and decodes."""
    import itertools

    from bandit.runs import load_run
    from decoding import calibrate as cal_mod
    from decoding.loop import DecodeConfig, decode_prompts

    steps = itertools.cycle([0.1, 0.3, 0.1, 0.5, 0.2, 0.9, 0.1])  # spread far above the limit, above the floor
    monkeypatch.setattr(cal_mod, "_step_seconds", lambda *a, **k: next(steps))
    run = load_run(built["run"])
    with pytest.warns(RuntimeWarning, match=r"step timings kept varying .* the medians are kept"):
        s = decode_prompts(run, all_arms_config, built["prompts"], tmp_path / "busy", DecodeConfig(greedy=True),
                           session=session, progress=False)
    assert s.n_decisions == 3 and s.n_lossless_failures == 0
    cal = open_log(tmp_path / "busy").metadata.extra["calibration"]
    assert cal["spread"]["target"] > 0.25
