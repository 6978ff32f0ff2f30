"""Alignment-only builds on tiny models: same alignment as the full build, no assisted decoding, resumable."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from logging_data import open_log, validate_log

PROMPTS = [
    ("q1", "the quick brown fox jumps over the lazy dog the quick brown", "creative", "train"),
    ("q2", "def add ( a , b ) : return a + b def add (", "code", "train"),
    ("q3", "the cat sat on the mat and the dog sat on the", "creative", "test"),
    ("q4", "summarize the following text in one line", "summarize", "train"),
    ("q5", "a draft model proposes tokens and the target model checks them", "creative", "test"),
]
ALIGN = ["align_prefix", "align_position", "align_lcs", "align_accept"]
MEASURED = ["wall_time_s", "plain_wall_time_s", "tokens_per_s", "speedup_wall", "n_repeats", "n_threads", "lossless"]
COUNTS = ["target_calls", "draft_calls", "draft_tokens", "accepted_tokens"]
ASSISTED_KEYS = ("assistant_model", "prompt_lookup_num_tokens", "assistant_early_exit")


@pytest.fixture()
def prompts_file(tmp_path) -> Path:
    p = tmp_path / "prompts.parquet"
    pd.DataFrame(PROMPTS, columns=["query_id", "prompt", "domain", "split"]).to_parquet(p)
    return p


def _cfg(alpha: float = 0.1, measure: bool = False, **kw):
    from decoding.build import BuildConfig, reward_definition

    return BuildConfig(reward=reward_definition("align_accept", alpha=alpha), batch_size=2, calibration_context=16,
                       calibration_repeats=2, measure=measure, **kw)


def _rows(path) -> pd.DataFrame:
    return open_log(path).read("outcomes").sort_values(["query_id", "arm"]).reset_index(drop=True)


@pytest.fixture()
def generate_calls(session, monkeypatch):
    """Every generate() call on the tiny target and draft: a list of the keyword names each got."""
    calls: list[set[str]] = []
    models = {id(session.target.model): session.target.model}
    for arm in session.config.arms:
        if arm.kind == "draft":
            m = session.draft(arm.name).model
            models[id(m)] = m
    for m in models.values():
        real = m.generate

        def counted(*args, _real=real, **kwargs):
            calls.append(set(kwargs))
            return _real(*args, **kwargs)

        monkeypatch.setattr(m, "generate", counted)
    return calls


def _assisted(calls: list[set[str]]) -> int:
    return sum(1 for kw in calls if kw & set(ASSISTED_KEYS))


def test_alignment_only_equals_the_full_builds_alignment(session, all_arms_config, prompts_file, tmp_path):
    from decoding.build import build_log
    from decoding.pricing import Calibration, speedup_count

    full, cheap = tmp_path / "full", tmp_path / "cheap"
    build_log(prompts_file, all_arms_config, full, _cfg(measure=True), session=session, progress=False)
    s = build_log(prompts_file, all_arms_config, cheap, _cfg(), session=session, command="test", progress=False)
    assert (s.n_prompts_decoded, s.n_rows_written, s.n_rows_skipped, s.n_lossless_failures) == (5, 25, 0, 0)
    assert validate_log(cheap).ok
    a, b = _rows(full), _rows(cheap)
    assert list(a[["query_id", "arm"]].itertuples(index=False)) == list(b[["query_id", "arm"]].itertuples(index=False))
    same = ALIGN + ["arm_output", "target_output", "n_new_tokens", "prompt", "domain", "split"]
    pd.testing.assert_frame_equal(a[same], b[same])
    assert b[ALIGN].notna().any(axis=None)  # something was compared
    # exact counts: plain decoding and the prompt-lookup replay equal what assisted decoding measured
    exact = b["arm"].isin(["plain", "lookup"])
    pd.testing.assert_frame_equal(a.loc[exact, COUNTS], b.loc[exact, COUNTS])
    assert (b.loc[b["arm"] == "plain", "speedup_count"] == 1.0).all()
    # measured columns are null; so are the counts of arms that run a drafting model
    assert b[MEASURED].isna().all(axis=None)
    assert b.loc[~exact, COUNTS + ["speedup_count"]].isna().all(axis=None)
    log = open_log(cheap)
    cal = Calibration.from_json(log.metadata.extra["calibration"])
    costs = cal.relative_costs()
    assert (b["arm_cost"] == b["arm"].map(costs)).all() and costs["exit1"] > 0 and costs["draft"] > 0
    look = b[b["arm"] == "lookup"].iloc[0]
    assert look["n_prompt_tokens"] >= 1  # the prefill the count model charges every arm
    assert look["speedup_count"] == pytest.approx(speedup_count(
        int(look["n_new_tokens"]), int(look["target_calls"]), 0, 0.0, int(look["draft_tokens"]),
        cal.relative_verify_cost(), cal.relative_round_cost("lookup"), int(look["n_prompt_tokens"]), cal.relative_prefill_cost()))
    build = log.metadata.extra["build"]
    assert build["measure"] is False and build["repeats"] is None and build["warmup"] is None


def test_no_assisted_generate_per_prompt(session, all_arms_config, prompts_file, tmp_path, generate_calls):
    from decoding.build import build_log

    cheap, full = tmp_path / "cheap", tmp_path / "full"
    for out, cfg in ((cheap, _cfg()), (full, _cfg(measure=True))):
        build_log(prompts_file, all_arms_config, out, cfg if out == full else replace(cfg, limit=1), session=session,
                  progress=False)
    generate_calls.clear()
    # resume the alignment-only log over the 4 remaining prompts (2 batches): calibration is not rerun
    s = build_log(prompts_file, all_arms_config, cheap, _cfg(), session=session, progress=False)
    assert (s.n_prompts_decoded, s.n_rows_written, s.n_rows_skipped) == (4, 20, 5)
    # per batch: the target's greedy run and one of each model of the arms' own (the early exit's, and the
    # draft's once: its two arms share it, their own outputs do not depend on k)
    models_of_arms = {a.draft if a.kind == "draft" else a.name for a in all_arms_config.arms if a.kind in ("draft", "early_exit")}
    assert len(models_of_arms) < sum(a.kind in ("draft", "early_exit") for a in all_arms_config.arms)
    assert _assisted(generate_calls) == 0
    assert len(generate_calls) == 2 * (1 + len(models_of_arms))
    rows = _rows(cheap)
    drafts = rows[rows["arm"].isin(["draft", "draft-heur"])].pivot(index="query_id", columns="arm", values="arm_output")
    assert (drafts["draft"] == drafts["draft-heur"]).all() and drafts.notna().all().all()
    # the counter does see assisted decoding: a measured build of one more prompt runs it per arm
    generate_calls.clear()
    extra = tmp_path / "more.parquet"
    pd.DataFrame([("q9", "the lazy dog sat on the mat", "creative", "test")],
                 columns=["query_id", "prompt", "domain", "split"]).to_parquet(extra)
    build_log(extra, all_arms_config, tmp_path / "full2", _cfg(measure=True), session=session, progress=False)
    assert _assisted(generate_calls) >= len([a for a in all_arms_config.arms if a.kind != "none"])


@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])
def test_rewards_follow_alpha(session, all_arms_config, prompts_file, tmp_path, alpha):
    from decoding.build import build_log

    build_log(prompts_file, all_arms_config, tmp_path / "log", _cfg(alpha=alpha, limit=2), session=session, progress=False)
    log = open_log(tmp_path / "log")
    df = log.read("outcomes")
    assert log.metadata.reward.alpha == alpha and log.metadata.reward.metric == "align_accept"
    plain = df["arm"] == "plain"
    assert (df.loc[plain, "reward"] == 0.0).all()
    expected = df.loc[~plain, "align_accept"] - alpha * df.loc[~plain, "arm_cost"]
    assert ((df.loc[~plain, "reward"] - expected).abs() < 1e-12).all()


def test_resume_after_a_crash_equals_uninterrupted(session, all_arms_config, prompts_file, tmp_path, monkeypatch, crash_on_second_call):
    from decoding import build as build_mod
    from decoding.build import build_log

    whole = tmp_path / "whole"
    build_log(prompts_file, all_arms_config, whole, _cfg(), session=session, progress=False)
    part = tmp_path / "part"
    real = crash_on_second_call(build_mod, "_alignment_batch")
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_log(prompts_file, all_arms_config, part, _cfg(), session=session, progress=False)
    assert open_log(part).n_rows("outcomes") == 10
    monkeypatch.setattr(build_mod, "_alignment_batch", real)
    s = build_log(prompts_file, all_arms_config, part, _cfg(), session=session, progress=False)
    assert (s.n_prompts_decoded, s.n_rows_written, s.n_rows_skipped) == (3, 15, 10)
    assert validate_log(part).ok
    cols = ["query_id", "arm"] + ALIGN + COUNTS + ["arm_output", "target_output", "n_new_tokens"]
    pd.testing.assert_frame_equal(_rows(whole)[cols], _rows(part)[cols])
    # a resumed log keeps its calibration, so its costs and rewards are consistent with its first part
    p = _rows(part)
    assert p.groupby("arm")["arm_cost"].nunique().eq(1).all()


@pytest.mark.parametrize("changes, pattern", [
    ({"reward": "speedup_count"}, r"price speedup_count only when every arm's counts replay.*arm\(s\) exit1, draft"),
    ({"reward": "speedup_wall"}, r"alignment-only build needs an alignment reward.*'speedup_wall'"),
    ({"repeats": 3}, r"--repeats/--warmup do not apply; got repeats=3, warmup=0"),
    ({"warmup": 1}, r"--repeats/--warmup do not apply; got repeats=1, warmup=1"),
])
def test_bad_alignment_only_settings_fail_before_any_work(session, all_arms_config, prompts_file, tmp_path, changes, pattern):
    from decoding.build import build_log, reward_definition

    cfg = _cfg()
    if "reward" in changes:
        cfg = replace(cfg, reward=reward_definition(changes.pop("reward")))
    cfg = replace(cfg, **changes)
    with pytest.raises(ValueError, match=pattern):
        build_log(prompts_file, all_arms_config, tmp_path / "log", cfg, session=session, progress=False)
    assert not (tmp_path / "log").exists()


@pytest.mark.parametrize("first, second, pattern", [
    (True, False, r"existing log is a measured build; this one is an alignment-only build \(drop --alignment-only"),
    (False, True, r"existing log is an alignment-only build; this one is a measured build \(add --alignment-only"),
])
def test_resume_refuses_the_other_mode(session, all_arms_config, prompts_file, tmp_path, first, second, pattern):
    from decoding.build import build_log

    out = tmp_path / "log"
    build_log(prompts_file, all_arms_config, out, _cfg(measure=first, limit=1), session=session, progress=False)
    before = _rows(out)
    with pytest.raises(ValueError, match=pattern):
        build_log(prompts_file, all_arms_config, out, _cfg(measure=second), session=session, progress=False)
    pd.testing.assert_frame_equal(before, _rows(out))


def test_cli_alignment_only(write_tiny_models, tiny_models, prompts_file, tmp_path):
    from bandit.cli.main import cli

    from .conftest import all_arms

    models = write_tiny_models(tmp_path / "models.toml", all_arms(tiny_models["draft"]))
    out = tmp_path / "log"
    args = ["build", str(prompts_file), "--models", str(models), "--out", str(out), "--alignment-only", "--alpha", "0.2",
            "--limit", "2", "--threads", "1", "--json"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    log = open_log(out)
    assert "--alignment-only" in log.metadata.extra["command"] and log.n_rows("outcomes") == 10
    assert log.read("outcomes")["wall_time_s"].isna().all()
    bad_args = ["build", str(prompts_file), "--models", str(models), "--out", str(tmp_path / "bad"), "--alignment-only",
                "--reward", "speedup_count"]
    bad = CliRunner().invoke(cli, bad_args)
    assert bad.exit_code == 1 and "speedup_count only when every arm's counts replay" in bad.output
    assert not (tmp_path / "bad").exists()
    helped = CliRunner().invoke(cli, ["build", "--help"])
    assert "--alignment-only" in helped.output and "bandit-log build prompts.parquet --models models.toml --out ALIGN --alignment-only" in helped.output


def test_replay_log_of_model_free_arms_equals_the_measured_build(tiny_config, prompts_file, tmp_path):
    """``--alignment-only --reward speedup_count`` over plain and joint prompt-lookup arms (n-gram size x
    draft tokens) gives the measured build's counts and count speed-ups exactly, with one calibration."""
    from decoding.build import BuildConfig, build_log, reward_definition
    from decoding.pricing import Calibration
    from decoding.session import DecodingSession

    from ..conftest import lookup_grid

    models = tiny_config(lookup_grid(ngrams=(1, 2, 3)), max_new_tokens=12)
    session = DecodingSession(models, threads=1)
    cal = Calibration(target_step_s=0.01, arm_step_s={}, verify_token_s=0.001, round_overhead_s=0.004, plain_step_s=0.01)
    reward = reward_definition("speedup_count")
    build_log(prompts_file, models, tmp_path / "measured", BuildConfig(reward=reward), session=session, progress=False,
              calibration=cal)
    build_log(prompts_file, models, tmp_path / "replay", BuildConfig(reward=reward, measure=False, batch_size=3),
              session=session, progress=False, calibration=cal)
    a, b = _rows(tmp_path / "measured"), _rows(tmp_path / "replay")
    assert len(a) == len(b) == 5 * 7 and validate_log(tmp_path / "replay").ok
    cols = ["query_id", "arm", "n_new_tokens", "target_output"] + COUNTS
    pd.testing.assert_frame_equal(a[cols], b[cols], check_dtype=False)
    pd.testing.assert_series_equal(a["speedup_count"], b["speedup_count"], rtol=1e-12)
    pd.testing.assert_series_equal(a["reward"], b["reward"], rtol=1e-12)
    assert b["wall_time_s"].isna().all() and a["lossless"].all()
    assert open_log(tmp_path / "replay").metadata.extra["calibration"]["arm_step_s"] == {a_: 0.0 for a_ in ["plain"] + [f"n{n}k{k}" for n in (1, 2, 3) for k in (2, 5)]}


def test_load_calibration_from_a_log_a_record_or_a_profile(tmp_path):
    import json

    from decoding.pricing import Calibration, load_calibration

    shipped = Path(__file__).resolve().parents[2] / "examples" / "data" / "smollm2-log"
    cal = load_calibration(shipped)
    assert cal.plain_step_s > 0 and cal.device == "cpu"
    (tmp_path / "record.json").write_text(json.dumps(cal.to_json()))
    assert load_calibration(tmp_path / "record.json") == cal
    (tmp_path / "profile.json").write_text(json.dumps({"what": "a profile", "calibration": cal.to_json()}))
    assert load_calibration(tmp_path / "profile.json") == cal
    for name, text, pattern in [("bad.json", "{nope", "not a JSON document"), ("list.json", "[1]", "expected a JSON object; found list"),
                                ("empty.json", "{}", "missing target_step_s, arm_step_s, verify_token_s, round_overhead_s, plain_step_s")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=f"calibration {tmp_path / name}: {pattern}"):
            load_calibration(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_calibration(tmp_path / "missing.json")
    (tmp_path / "dir").mkdir()
    with pytest.raises(ValueError, match="not a log"):
        load_calibration(tmp_path / "dir")
    assert isinstance(cal, Calibration)


def test_length_sorted_windows_keep_the_files_order_at_large():
    from decoding.build import SORT_WINDOW_BATCHES, length_sorted_windows

    pending = list(range(40))
    lengths = {i: (7 * i) % 11 for i in pending}
    got = length_sorted_windows(pending, lengths, batch_size=2)
    window = SORT_WINDOW_BATCHES * 2
    assert sorted(got) == pending  # every prompt once
    for start in range(0, 40, window):
        part = got[start:start + window]
        assert sorted(part) == pending[start:start + window]  # a window holds the same prompts as the file's
        assert [lengths[i] for i in part] == sorted(lengths[i] for i in part)
