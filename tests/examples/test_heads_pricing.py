"""examples/heads.py's pricing helpers, against the count model itself (fast: no model)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding.calibrate import Calibration, load_calibration, speedup_count
from decoding.reprice import price_counts


@pytest.fixture(scope="module")
def ex(load_example):
    return load_example("heads")


def _outcomes(rows: list[tuple[str, str, str, int, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["arm", "domain", "split", "n_new_tokens", "target_calls", "draft_tokens", "draft_calls"])


def _ratio_of_totals(frame: pd.DataFrame, cal: Calibration, arm: str) -> float:
    s = pd.Series(price_counts(frame, {arm: "head"}, cal), index=frame.index)
    return float(frame["n_new_tokens"].sum() / (frame["n_new_tokens"] / s).sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 48), st.integers(0, 3), st.integers(0, 30)), min_size=1, max_size=6),
       st.floats(1.05, 1.6))
def test_break_even_step_prices_the_own_domain_at_exactly_the_bar(ex, prompts, bar):
    """At the returned step the arm's test speed-up on its own domain is exactly ``bar``; None iff a free step falls short."""
    h200 = load_calibration(ex.H200)
    rows = []
    for n, calls_saved, drafted in prompts:  # a plausible round: fewer target calls than tokens, k <= 5 drafted per call
        calls = max(1, n - calls_saved * (n // 4))
        rows.append(("head-code-k3", "code", "test", n, calls, min(drafted, 5 * calls), calls))
    rows += [("head-code-k3", "translate", "test", 40, 40, 120, 40), ("head-code-k3", "code", "train", 40, 1, 3, 1)]  # not counted
    frame = _outcomes(rows)
    step = ex.break_even_head_step(frame, h200, bar)["head-code-k3"]
    own = frame[(frame["domain"] == "code") & (frame["split"] == "test")]
    free = _ratio_of_totals(own, Calibration(**{**h200.to_json(), "arm_step_s": {"head-code-k3": 0.0}}), "head-code-k3")
    if step is None:
        assert free <= bar + 1e-9
    else:
        priced = Calibration(**{**h200.to_json(), "arm_step_s": {"head-code-k3": step}})
        assert _ratio_of_totals(own, priced, "head-code-k3") == pytest.approx(bar, rel=1e-9)
        totals = ex.own_domain_totals(frame)["head-code-k3"]  # what examples/gpu_heads.py prices a measured step with
        assert totals["domain"] == "code" and totals["n_prompts"] == len(own)
        assert ex.own_domain_speedup(totals, h200, step) == pytest.approx(bar, rel=1e-9)


def test_break_even_step_reads_the_domain_from_the_arm_name(ex):
    h200 = load_calibration(ex.H200)
    frame = _outcomes([("lookup-head-summarize-gated", "summarize", "test", 48, 10, 30, 20),
                       ("lookup-head-summarize-gated", "code", "test", 48, 48, 0, 0),
                       ("head-translate-tuned", "translate", "test", 48, 48, 96, 48), ("plain", "code", "test", 48, 48, 0, 0)])
    got = ex.break_even_head_step(frame, h200, 1.2)
    assert set(got) == {"lookup-head-summarize-gated", "head-translate-tuned"}  # head arms only
    assert got["head-translate-tuned"] is None  # no token accepted: no step is cheap enough
    v, r = h200.relative_verify_cost(), h200.relative_round_cost()
    assert speedup_count(48, 10, 20, got["lookup-head-summarize-gated"] / h200.step_s, 30, v, r) == pytest.approx(1.2)


@pytest.mark.parametrize("arm, domain", [
    ("head-code-k3", "code"), ("head-translate-tuned", "translate"), ("head-summarize-k5-gated", "summarize"),
    ("lookup-head-questions", "questions"), ("lookup-head-code-gated", "code"), ("lookup-n3-k10", None), ("plain", None),
])
def test_head_arm_domain(ex, arm, domain):
    assert ex.head_arm_domain(arm) == domain


@pytest.mark.parametrize("table, bar, want", [
    ({"k2-gate0.2": {"acceptance": 0.5, "count_h200": 1.1}, "k3-gate0.0": {"acceptance": 0.3, "count_h200": 1.3}}, 0.45, "k2-gate0.2"),
    ({"k2-gate0.2": {"acceptance": 0.5, "count_h200": 1.1}, "k3-gate0.0": {"acceptance": 0.3, "count_h200": 1.3}}, 0.0, "k3-gate0.0"),
    ({"k2-gate0.2": {"acceptance": 0.4, "count_h200": 1.1}}, 0.45, None),
])
def test_pick_setting(ex, table, bar, want):
    assert ex.pick_setting(table, bar) == want
    if want:
        k, gate = ex.parse_setting(want)
        assert f"k{k}-gate{gate}" == want
