"""examples/obp_style.py: generated OBP-style data goes through import and evaluate, and the estimates find the truth."""

from __future__ import annotations


def test_obp_style_example_recovers_the_true_value(load_example, tmp_path):
    result = load_example("obp_style").main(n=4000, seed=3, out=tmp_path / "obp")
    assert {r["estimator"] for r in result["rows"]} == {"ips", "snips", "dr"}
    for r in result["rows"]:
        assert abs(r["estimate"] - result["truth"]) < 0.05, r
        assert r["ci_low"] < r["ci_high"]
    assert (tmp_path / "obp" / "report" / "report.html").is_file()
