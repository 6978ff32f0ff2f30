"""The drafter pipeline's pricing and tuning helpers (decoding.drafters), against the count model itself (fast: no model)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pathlib import Path

from decoding.pricing import Calibration, load_calibration, speedup_count
from decoding.drafters.pricing import break_even_head_step, head_arm_domain, own_domain_totals, price_totals
from decoding.drafters.tuning import HeadSetting, StoreHeadSetting, StoreSetting, pick_setting
from decoding.reprice import price_counts

H200 = Path(__file__).resolve().parents[2] / "examples" / "profiles" / "h200-smollm2-135m-fp32.json"


def _outcomes(rows: list[tuple[str, str, str, int, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["arm", "domain", "split", "n_new_tokens", "target_calls", "draft_tokens", "draft_calls"])


def _ratio_of_totals(frame: pd.DataFrame, cal: Calibration, arm: str) -> float:
    s = pd.Series(price_counts(frame, {arm: "head"}, cal), index=frame.index)
    return float(frame["n_new_tokens"].sum() / (frame["n_new_tokens"] / s).sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 48), st.integers(0, 3), st.integers(0, 30)), min_size=1, max_size=6),
       st.floats(1.05, 1.6))
def test_break_even_step_prices_the_own_domain_at_exactly_the_bar(prompts, bar):
    """At the returned step the arm's test speed-up on its own domain is exactly ``bar``; None iff a free step falls short."""
    h200 = load_calibration(H200)
    rows = []
    for n, calls_saved, drafted in prompts:  # a plausible round: fewer target calls than tokens, k <= 5 drafted per call
        calls = max(1, n - calls_saved * (n // 4))
        rows.append(("head-code-k3", "code", "test", n, calls, min(drafted, 5 * calls), calls))
    rows += [("head-code-k3", "translate", "test", 40, 40, 120, 40), ("head-code-k3", "code", "train", 40, 1, 3, 1)]  # not counted
    frame = _outcomes(rows)
    step = break_even_head_step(frame, h200, bar)["head-code-k3"]
    own = frame[(frame["domain"] == "code") & (frame["split"] == "test")]
    free = _ratio_of_totals(own, Calibration(**{**h200.to_json(), "arm_step_s": {"head-code-k3": 0.0}}), "head-code-k3")
    if step is None:
        assert free <= bar + 1e-9
    else:
        priced = Calibration(**{**h200.to_json(), "arm_step_s": {"head-code-k3": step}})
        assert _ratio_of_totals(own, priced, "head-code-k3") == pytest.approx(bar, rel=1e-9)
        totals = own_domain_totals(frame)["head-code-k3"]  # what examples/gpu_heads.py prices a measured step with
        assert totals["domain"] == "code" and totals["n_prompts"] == len(own)
        assert price_totals(totals, h200, step) == pytest.approx(bar, rel=1e-9)


def test_break_even_step_reads_the_domain_from_the_arm_name():
    h200 = load_calibration(H200)
    frame = _outcomes([("lookup-head-summarize-gated", "summarize", "test", 48, 10, 30, 20),
                       ("lookup-head-summarize-gated", "code", "test", 48, 48, 0, 0),
                       ("head-translate-tuned", "translate", "test", 48, 48, 96, 48), ("plain", "code", "test", 48, 48, 0, 0)])
    got = break_even_head_step(frame, h200, 1.2)
    assert set(got) == {"lookup-head-summarize-gated", "head-translate-tuned"}  # head arms only
    assert got["head-translate-tuned"] is None  # no token accepted: no step is cheap enough
    v, r = h200.relative_verify_cost(), h200.relative_round_cost()
    assert speedup_count(48, 10, 20, got["lookup-head-summarize-gated"] / h200.step_s, 30, v, r) == pytest.approx(1.2)


@pytest.mark.parametrize("arm, domain", [
    ("head-code-k3", "code"), ("head-translate-tuned", "translate"), ("head-summarize-k5-gated", "summarize"),
    ("lookup-head-questions", "questions"), ("lookup-head-code-gated", "code"), ("lookup-n3-k10", None), ("plain", None),
])
def test_head_arm_domain(arm, domain):
    assert head_arm_domain(arm) == domain


_K2, _K3 = HeadSetting(2, 0.2), HeadSetting(3, 0.0)


@pytest.mark.parametrize("table, bar, want", [
    ({_K2: {"acceptance": 0.5, "count": 1.1}, _K3: {"acceptance": 0.3, "count": 1.3}}, 0.45, _K2),
    ({_K2: {"acceptance": 0.5, "count": 1.1}, _K3: {"acceptance": 0.3, "count": 1.3}}, 0.0, _K3),
    ({HeadSetting(2, 0.2): {"acceptance": 0.4, "count": 1.1}}, 0.45, None),
])
def test_pick_setting(table, bar, want):
    assert pick_setting(table, bar) == want


@pytest.mark.parametrize("setting, name", [
    (HeadSetting(2, 0.3), "k2-gate0.3"), (HeadSetting(3), "k3-gate0.0"), (HeadSetting(5, 0.4), "k5-gate0.4"),
    (StoreSetting(4, 2, 0.3), "k4-count2-frac0.3"), (StoreSetting(8, 1, 0), "k8-count1-frac0.0"),
    (StoreHeadSetting(StoreSetting(4, 1, 0.0), HeadSetting(2, 0.5)), "k4-count1-frac0.0+head-k2-gate0.5"),
])
def test_setting_names(setting, name):
    assert setting.name == name
    if isinstance(setting, HeadSetting):
        assert HeadSetting.parse(name) == setting


@pytest.mark.parametrize("bad", ["k2", "gate0.3", "k2-gate", "kx-gate0.3", "k2-gate0.3-extra", ""])
def test_head_setting_parse_refuses(bad):
    with pytest.raises(ValueError, match="must read 'k<draft length>-gate<confidence>'"):
        HeadSetting.parse(bad)
