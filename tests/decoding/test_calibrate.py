"""The count model: hand-checked speed-ups, the calibration record, and a real calibration run."""

from __future__ import annotations

import math
import warnings

import pytest

from decoding.calibrate import calibrate
from decoding.pricing import DEFAULT_DRAFT_TOKENS, Calibration, speedup_count


@pytest.mark.parametrize(
    "n_new, t_calls, d_calls, rel, d_tokens, verify, expected",
    [
        (10, 10, 0, 0.0, 0, 0.0, 1.0),             # plain decoding
        (12, 4, 0, 0.0, 12, 0.0, 3.0),             # free verification: tokens per target call
        (12, 4, 0, 0.0, 12, 0.5, 12 / (4 + 6)),    # each drafted token costs half a step to verify
        (12, 4, 16, 0.25, 16, 0.1, 12 / (4 + 1.6 + 4)),
    ],
)
def test_speedup_count_by_hand(n_new, t_calls, d_calls, rel, d_tokens, verify, expected):
    assert speedup_count(n_new, t_calls, d_calls, rel, d_tokens, verify) == pytest.approx(expected)


def test_round_cost_is_paid_once_per_target_call():
    # 12 tokens in 4 rounds, 8 drafted tokens at 0.1 step each, each round 0.25 step of overhead
    assert speedup_count(12, 4, 0, 0.0, 8, 0.1, 0.25) == pytest.approx(12 / (4 * 1.25 + 0.8))
    assert speedup_count(12, 12, 0, 0.0, 0, 0.1, 0.0) == 1.0


def test_speedup_count_refuses_a_zero_cost():
    with pytest.raises(ValueError, match="speedup_count needs"):
        speedup_count(5, 0, 0, 0.0)


def test_calibration_json_round_trip_keeps_the_verify_cost():
    cal = Calibration(target_step_s=0.02, arm_step_s={"d": 0.005, "lookup": 0.0}, verify_token_s=0.004, verify_block=5,
                      round_overhead_s=0.003)
    back = Calibration.from_json(cal.to_json())
    assert back == cal
    assert back.relative_verify_cost() == pytest.approx(0.2)
    assert back.relative_round_cost() == pytest.approx(0.15)
    assert back.relative_costs() == {"d": pytest.approx(0.25), "lookup": 0.0}


GOOD = {"target_step_s": 0.01, "arm_step_s": {"d": 0.002, "lookup": 0.0}, "verify_token_s": 0.001, "round_overhead_s": 0.0005,
        "plain_step_s": 0.011}


@pytest.mark.parametrize("change, message", [
    ({"verify_token_s": None}, r"missing verify_token_s .*re-measure with `bandit-log calibrate`"),
    ({"round_overhead_s": None, "plain_step_s": None}, r"missing round_overhead_s, plain_step_s"),
    ({"target_step_s": 0}, r"target_step_s must be a finite number of seconds in \(0, 3600\]; got 0"),
    ({"target_step_s": -0.01}, r"target_step_s must be a finite number of seconds in \(0"),
    ({"verify_token_s": float("nan")}, r"verify_token_s must be a finite number of seconds in \[0, 3600\]; got nan"),
    ({"round_overhead_s": 1e300}, r"round_overhead_s must be a finite number .*got 1e\+300"),
    ({"plain_step_s": "0.3"}, r"plain_step_s must be a finite number of seconds in \[0, 3600\]; got '0.3' \(str\)"),
    ({"arm_step_s": {"d": -1.0}}, r"arm_step_s\['d'\] must be a finite number of seconds in \[0"),
    ({"arm_step_s": [0.1]}, r"arm_step_s must be an object of arm name -> seconds; got \[0.1\] \(list\)"),
    ({"verify_block": 0}, r"verify_block must be an integer >= 1; got 0"),
    ({"target_step_s": True}, r"target_step_s must be a finite number of seconds in \(0, 3600\]; got True \(bool\)"),
])
def test_a_record_that_cannot_price_a_log_is_refused_with_every_problem(change, message):
    record = {**GOOD, **change}
    record = {k: v for k, v in record.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        Calibration.from_json(record)


def test_a_good_record_loads_and_a_profile_file_names_itself_in_the_error(tmp_path):
    import json

    from decoding.pricing import load_calibration

    assert Calibration.from_json(GOOD).relative_verify_cost() == pytest.approx(0.1 / 1.1)
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"calibration": {**GOOD, "target_step_s": 0, "verify_token_s": -1}}))
    with pytest.raises(ValueError, match=r"calibration .*p.json: target_step_s must .*; verify_token_s must"):
        load_calibration(bad)


def test_calibrate_measures_every_arm_and_the_verification_block(session):
    # what is measured, not the spread check (its own tests below): a loaded machine warns and keeps the medians
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate(session, context_len=12, repeats=2, warmup=1, on_unstable="warn")
    assert cal.target_step_s > 0 and math.isfinite(cal.verify_token_s) and cal.verify_token_s >= 0
    assert math.isfinite(cal.round_overhead_s) and cal.round_overhead_s >= 0
    blocks = [a.n_draft_tokens or DEFAULT_DRAFT_TOKENS for a in session.config.arms if a.kind != "none"]
    assert cal.verify_block == min(1 + max(blocks), cal.context_len)
    assert set(cal.arm_step_s) == set(session.config.arm_names)
    kinds = {a.name: a.kind for a in session.config.arms}
    for name, seconds in cal.arm_step_s.items():
        assert (seconds > 0) == (kinds[name] in ("draft", "early_exit"))


def test_spread_is_the_interquartile_range_over_the_median():
    from decoding.calibrate import spread

    assert spread([1.0]) == 0.0 and spread([]) == 0.0
    assert spread([1.0, 1.0, 1.0]) == 0.0
    assert spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((4.0 - 2.0) / 3.0)


def _fake_steps(monkeypatch, times):
    """Replace the timed forward step with a sequence of durations (the decision logic under test,
    not the clock: a real busy machine is not reproducible)."""
    import itertools

    from decoding import calibrate as cal_mod

    it = itertools.cycle(times)
    monkeypatch.setattr(cal_mod, "_step_seconds", lambda *a, **k: next(it))
    prefill = itertools.cycle([2.0, 2.1, 2.0, 2.05])  # a prefill of the calibration's tokens: well above a step
    monkeypatch.setattr(cal_mod, "_prefill_seconds", lambda *a, **k: next(prefill))


def test_a_step_that_keeps_varying_is_retimed_then_refused_with_its_numbers(monkeypatch, session):
    from decoding.calibrate import CalibrationUnstable, calibrate

    _fake_steps(monkeypatch, [0.1, 0.3, 0.1, 0.5, 0.2, 0.9, 0.1])  # above the floor: checked
    with pytest.raises(CalibrationUnstable, match=r"after 2 rounds of 4 interleaved repeats: the target step: median [0-9.]+ s, "
                                                   r"spread [0-9]+% over 8 runs"):
        calibrate(session, context_len=8, repeats=4, warmup=0, attempts=2)
    cal = calibrate(session, context_len=8, repeats=4, warmup=0, max_spread=None)  # no check asked for
    assert cal.spread["target"] > 0.25 and cal.repeats == 4
    with pytest.warns(RuntimeWarning, match=r"after 2 rounds of 4 interleaved repeats: .*the medians are kept"):
        cal = calibrate(session, context_len=8, repeats=4, warmup=0, attempts=2, on_unstable="warn")  # a build's own calibration
    assert cal.spread["target"] > 0.25 and cal.repeats == 8 and cal.target_step_s > 0
    with pytest.raises(ValueError, match="on_unstable must be 'raise' or 'warn'; got 'ignore'"):
        calibrate(session, context_len=8, repeats=4, on_unstable="ignore")


def test_a_steady_machine_passes_and_every_arm_of_one_draft_gets_its_one_cost(monkeypatch, tiny_config):
    from decoding.calibrate import calibrate
    from decoding.pricing import Calibration
    from decoding.models import ArmConfig
    from decoding.session import DecodingSession

    arms = [ArmConfig.of("d", "draft", draft="draft", num_assistant_tokens=2, loop=True),
            ArmConfig.of("h", "lookup_draft", draft="draft", num_assistant_tokens=2),
            ArmConfig.of("l", "prompt_lookup", prompt_lookup_num_tokens=3)]
    s = DecodingSession(tiny_config(arms), threads=1)
    _fake_steps(monkeypatch, [0.1, 0.11, 0.1, 0.105])
    cal = calibrate(s, context_len=8, repeats=4, warmup=1)
    assert cal.arm_step_s["d"] == cal.arm_step_s["h"] > 0 and cal.arm_step_s["l"] == 0.0
    assert set(cal.spread) == {"target", "verify_block", "prefill", "d,h", "d,h prefill", "l"} and max(cal.spread.values()) <= 0.25
    assert cal.arm_prefill_token_s["d"] == cal.arm_prefill_token_s["h"] > 0 and "l" not in cal.arm_prefill_token_s
    assert cal.arm_round_s["d"] == cal.arm_round_s["h"]  # both run in the project's loop (the draft asks: loop = true)
    assert cal.arm_round_s["l"] == cal.round_overhead_s  # prompt lookup runs in generate()
    assert Calibration.from_json(cal.to_json()) == cal  # the spreads travel with the profile


def test_the_prefill_is_priced_for_every_arm_and_the_drafts_own_for_draft_arms_that_drafted():
    # a step 1 s; each prompt token 0.02 s in the target's prefill and 0.01 s in the draft's; verifying free
    cal = Calibration(target_step_s=1.0, plain_step_s=1.0, arm_step_s={"d": 0.25, "l": 0.0}, prefill_token_s=0.02,
                      arm_prefill_token_s={"d": 0.01}, round_overhead_s=0.1, arm_round_s={"d": 0.2})
    # plain: 12 tokens after a 100-token prompt: the prefill is the same on both sides
    assert cal.speedup("plain", True, 12, 12, 0, 0, 100) == 1.0
    # prompt lookup: 4 rounds of generate()'s overhead, 100 prompt tokens priced on both sides
    assert cal.speedup("l", False, 12, 4, 0, 8, 100) == pytest.approx((12 + 2) / (4 * 1.1 + 2))
    # the draft: its own round overhead, its steps, and its own prefill of the prompt
    assert cal.speedup("d", False, 12, 4, 8, 8, 100) == pytest.approx((12 + 2) / (4 * 1.2 + 8 * 0.25 + 2 + 1))
    # a hybrid arm that never called its draft never read the prompt with it
    assert cal.speedup("d", False, 12, 4, 0, 8, 100) == pytest.approx((12 + 2) / (4 * 1.2 + 2))
    # without a prompt length (a log from before n_prompt_tokens) the prefill is left out, as before
    assert cal.speedup("d", False, 12, 4, 8, 8, None) == pytest.approx(12 / (4 * 1.2 + 8 * 0.25))
    assert cal.speedup("d", False, 0, 0, 0, 0, 100) == 1.0  # no new tokens: nothing to speed up
    # the prefill dilutes every speed-up towards 1, and a draft's share can turn a win into a loss
    assert 1.0 < cal.speedup("l", False, 12, 4, 0, 8, 1000) < cal.speedup("l", False, 12, 4, 0, 8, 10)
    assert cal.speedup("d", False, 12, 6, 6, 6, 2000) < 1.0 < cal.speedup("d", False, 12, 6, 6, 6, 10)


def test_an_older_record_without_prefill_or_path_costs_prices_as_before():
    old = Calibration.from_json(GOOD)
    assert old.prefill_token_s == 0.0 and dict(old.arm_round_s) == {} and dict(old.arm_prefill_token_s) == {}
    assert old.speedup("d", False, 12, 4, 8, 8, 500) == pytest.approx(
        speedup_count(12, 4, 8, old.relative_costs()["d"], 8, old.relative_verify_cost(), old.relative_round_cost()))
    new = Calibration(**{**GOOD, "prefill_token_s": 0.001, "arm_prefill_token_s": {"d": 0.0005}, "arm_round_s": {"d": 0.001}})
    assert Calibration.from_json(new.to_json()) == new


@pytest.mark.parametrize("change, message", [
    ({"prefill_token_s": -0.1}, r"prefill_token_s must be a finite number of seconds in \[0, 3600\]; got -0.1"),
    ({"prefill_token_s": "fast"}, r"prefill_token_s must be a finite number of seconds"),
    ({"arm_prefill_token_s": {"d": float("inf")}}, r"arm_prefill_token_s\['d'\] must be a finite number of seconds"),
    ({"arm_round_s": [0.1]}, r"arm_round_s must be an object of arm name -> seconds; got \[0.1\] \(list\)"),
])
def test_bad_prefill_and_path_costs_are_refused_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        Calibration.from_json({**GOOD, **change})


def test_calibrate_times_the_prefill_and_the_round_of_each_path_for_real(tiny_config):
    from decoding.models import ArmConfig
    from decoding.session import DecodingSession

    arms = [ArmConfig.of("d", "draft", draft="draft", num_assistant_tokens=2, loop=True),
            ArmConfig.of("g", "draft", draft="draft", num_assistant_tokens=2),
            ArmConfig.of("l", "prompt_lookup", prompt_lookup_num_tokens=3)]
    s = DecodingSession(tiny_config(arms), threads=1)
    cal = calibrate(s, context_len=8, repeats=2, warmup=1, max_spread=None, prefill_len=32)
    # real clocks on tiny models under a loaded machine: the values are only bounded here (the arithmetic is
    # checked with a fake clock above)
    assert cal.prefill_token_s >= 0 and math.isfinite(cal.prefill_token_s)
    assert set(cal.arm_prefill_token_s) == {"d", "g"} and cal.arm_prefill_token_s["d"] == cal.arm_prefill_token_s["g"] >= 0
    assert set(cal.arm_round_s) == {"d", "g", "l"}
    assert cal.arm_round_s["g"] == cal.arm_round_s["l"] == cal.round_overhead_s  # generate()'s rounds
    assert cal.arm_round_s["d"] >= 0 and math.isfinite(cal.arm_round_s["d"])  # the loop's, timed on its own
    with pytest.raises(ValueError, match="prefill_len >= 2"):
        calibrate(s, prefill_len=1)
