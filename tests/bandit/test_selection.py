"""The selection rule: a learned policy only when it beats the best fixed arm beyond noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit.selection import candidate_kind, exact_values, select_exact, select_from_rows, select_off_policy


def _rewards(n: int, seed: int = 0) -> np.ndarray:
    """(n, 2) rewards: arm 0 pays 1.2 on even prompts, arm 1 pays 1.2 on odd ones, 1.0 elsewhere, plus noise."""
    rng = np.random.default_rng(seed)
    r = np.full((n, 2), 1.0) + rng.normal(0, 0.02, (n, 2))
    r[::2, 0] += 0.2
    r[1::2, 1] += 0.2
    return r


def _onehot(choice: np.ndarray, n_arms: int = 2) -> np.ndarray:
    return np.eye(n_arms)[choice]


def test_a_learned_policy_that_is_better_beyond_noise_is_chosen():
    r = _rewards(200)
    smart = _onehot(np.arange(200) % 2)  # the best arm on every prompt
    s = select_exact({"fixed:a": _onehot(np.zeros(200, int)), "fixed:b": _onehot(np.ones(200, int)),
                      "uniform": np.full((200, 2), 0.5), "smart": smart}, r)
    assert s.chosen == "smart" and s.method == "exact"
    c = s.candidate("smart")
    assert c.beats_best_fixed and c.diff_low > 0.05
    assert "paired interval" in s.reason and "above zero" in s.reason


def test_the_best_fixed_arm_is_kept_when_no_policy_is_better_beyond_noise():
    r = _rewards(200)
    noisy = _onehot(np.random.default_rng(1).integers(0, 2, 200))  # random choices: no better than a fixed arm
    s = select_exact({"fixed:a": _onehot(np.zeros(200, int)), "fixed:b": _onehot(np.ones(200, int)), "noisy": noisy,
                      "uniform": np.full((200, 2), 0.5)}, r)
    assert s.chosen == s.best_fixed and s.chosen in ("fixed:a", "fixed:b")
    assert "beyond noise" in s.reason and "reaches zero" in s.reason


def test_a_slightly_better_policy_on_few_prompts_is_not_enough():
    # better on average, but on 6 prompts the paired interval reaches zero
    r = np.array([[1.0, 1.1], [1.0, 0.9], [1.0, 1.3], [1.0, 0.8], [1.0, 1.2], [1.0, 1.0]])
    better = _onehot(np.array([1, 0, 1, 1, 1, 0]))
    s = select_exact({"fixed:a": _onehot(np.zeros(6, int)), "fixed:b": _onehot(np.ones(6, int)), "lucky": better}, r)
    assert s.best_fixed == "fixed:b" and s.candidate("lucky").value > s.candidate("fixed:b").value
    assert s.chosen == "fixed:b" and not s.candidate("lucky").beats_best_fixed


def test_bonferroni_widens_the_interval_with_more_candidates():
    r = _rewards(60, seed=3)
    smart = _onehot(np.arange(60) % 2)
    base = {"fixed:a": _onehot(np.zeros(60, int)), "fixed:b": _onehot(np.ones(60, int)), "smart": smart}
    one = select_exact(base, r)
    many = select_exact({**base, **{f"copy{i}": smart for i in range(9)}}, r)
    assert math.isclose(one.adjusted_level, 0.95) and math.isclose(many.adjusted_level, 1 - 0.05 / 10)
    assert many.candidate("smart").diff_low < one.candidate("smart").diff_low


def test_hindsight_references_are_never_candidates():
    r = _rewards(50)
    s = select_exact({"fixed:a": _onehot(np.zeros(50, int)), "fixed:b": _onehot(np.ones(50, int)),
                      "oracle": _onehot(r.argmax(axis=1))}, r)
    assert s.chosen in ("fixed:a", "fixed:b") and "oracle" not in [c.name for c in s.candidates]
    assert candidate_kind("oracle") == "hindsight" and candidate_kind("fixed:x") == "fixed"


def test_off_policy_selection_says_so():
    rng = np.random.default_rng(0)
    rows = {"fixed:a": rng.normal(1.0, 0.1, 400), "vw": rng.normal(1.3, 0.1, 400)}
    s = select_off_policy(rows, "dr")
    assert s.chosen == "vw" and s.method == "off-policy:dr"
    assert "off-policy:dr" in s.table() and "* vw" in s.table()
    assert s.to_json()["candidates"][0]["diff_low"] is None  # NaN for fixed arms becomes null in JSON


@given(st.integers(min_value=2, max_value=40), st.integers(min_value=0, max_value=10_000))
@settings(max_examples=40, deadline=None)
def test_never_chooses_a_candidate_below_the_best_fixed_arm(n, seed):
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.5, 2.0, (n, 3))
    probs = {f"fixed:{i}": _onehot(np.full(n, i), 3) for i in range(3)}
    probs.update({f"p{j}": rng.dirichlet(np.ones(3), n) for j in range(4)})
    s = select_exact(probs, r)
    best_fixed_value = max(exact_values(probs[k], r).mean() for k in probs if k.startswith("fixed:"))
    assert s.candidate(s.chosen).value >= best_fixed_value - 1e-12


@pytest.mark.parametrize("rows, pattern", [
    ({"oracle": np.ones(3)}, "no deployable candidate"),
    ({"vw": np.ones(3)}, "needs the fixed arms"),
    ({"fixed:a": np.ones(3), "vw": np.ones(4)}, "one value per validation prompt"),
    ({"fixed:a": np.array([1.0, np.nan])}, "fixed:a have NaN or inf \\(first row 1\\)"),
    ({"fixed:a": np.ones((2, 2))}, "one value per validation prompt"),
])
def test_bad_input(rows, pattern):
    with pytest.raises(ValueError, match=pattern):
        select_from_rows(rows)


def test_bad_level_and_shapes():
    with pytest.raises(ValueError, match="level must be in \\(0, 1\\)"):
        select_from_rows({"fixed:a": np.ones(3)}, level=1.5)
    with pytest.raises(ValueError, match="both be \\(n, n_arms\\)"):
        exact_values(np.ones((3, 2)), np.ones((3, 3)))


def test_paired_difference_hand_checked():
    from bandit.selection import paired_difference

    p = paired_difference(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 1.0]))
    # differences 1, 1, 2: mean 4/3, sd 0.57735, se 0.33333
    assert p.diff == pytest.approx(4 / 3) and p.n == 3
    assert p.low == pytest.approx(4 / 3 - 1.959964 * 1 / 3, rel=1e-5) and p.high == pytest.approx(4 / 3 + 1.959964 / 3, rel=1e-5)
    with pytest.raises(ValueError, match="same prompts"):
        paired_difference(np.ones(2), np.ones(3))
