"""The count model: hand-checked speed-ups, the calibration record, and a real calibration run."""

from __future__ import annotations

import math

import pytest

from decoding.calibrate import DEFAULT_DRAFT_TOKENS, Calibration, calibrate, speedup_count


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


def test_old_records_without_verify_fields_still_load():
    cal = Calibration.from_json({"target_step_s": 0.01, "arm_step_s": {}})
    assert cal.relative_verify_cost() == 0.0 and cal.verify_block == 1 and cal.relative_round_cost() == 0.0


def test_calibrate_measures_every_arm_and_the_verification_block(session):
    cal = calibrate(session, context_len=12, repeats=2, warmup=1)
    assert cal.target_step_s > 0 and math.isfinite(cal.verify_token_s) and cal.verify_token_s >= 0
    assert math.isfinite(cal.round_overhead_s) and cal.round_overhead_s >= 0
    blocks = [a.n_draft_tokens or DEFAULT_DRAFT_TOKENS for a in session.config.arms if a.kind != "none"]
    assert cal.verify_block == min(1 + max(blocks), cal.context_len)
    assert set(cal.arm_step_s) == set(session.config.arm_names)
    kinds = {a.name: a.kind for a in session.config.arms}
    for name, seconds in cal.arm_step_s.items():
        assert (seconds > 0) == (kinds[name] in ("draft", "early_exit"))
