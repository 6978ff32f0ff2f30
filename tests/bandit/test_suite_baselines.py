"""The domain table baseline and the paired totals comparison (``bandit.suite``): ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bandit.suite import domain_table, domain_table_probs, paired_totals


def _outcomes(rows):
    return pd.DataFrame.from_records([
        {"query_id": q, "domain": d, "split": "validation", "arm": a, "speedup_count": s, "n_new_tokens": n, "reward": 1 - 1 / s,
         "prompt": q}
        for q, d, a, s, n in rows])


def test_the_domain_table_takes_each_domains_best_arm_by_its_total():
    out = _outcomes([
        ("q1", "code", "a", 2.0, 10), ("q1", "code", "b", 1.0, 10),
        ("q2", "code", "a", 1.0, 100), ("q2", "code", "b", 1.5, 100),  # the long prompt decides the total
        ("q3", "text", "a", 1.0, 10), ("q3", "text", "b", 1.2, 10),
    ])
    table = domain_table(out, ["a", "b"])
    assert table == {"code": "b", "text": "b"}
    frame = pd.DataFrame({"domain": ["code", "text", "math"]})
    assert domain_table_probs(frame, {"code": "a", "text": "b"}, ["a", "b"], fallback="b").tolist() == [[1, 0], [0, 1], [0, 1]]


def test_paired_totals_are_ratios_of_totals_with_an_interval_around_the_difference():
    n = np.array([10.0, 20.0, 30.0, 40.0])
    a, b = n / 2.0, n / 1.5
    got = paired_totals(a, b, n)
    assert got["a"] == pytest.approx(2.0) and got["b"] == pytest.approx(1.5) and got["ratio"] == pytest.approx(4 / 3)
    assert got["low"] == pytest.approx(0.5) and got["high"] == pytest.approx(0.5)  # the same ratio on every prompt
    rng = np.random.default_rng(0)
    noisy = paired_totals(n / rng.uniform(1.0, 2.0, 4), n / 1.5, n)
    assert noisy["low"] <= noisy["diff"] <= noisy["high"]
    with pytest.raises(ValueError, match="three float \\(n,\\) arrays"):
        paired_totals(a, b[:2], n)
