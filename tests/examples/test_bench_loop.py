"""examples/bench_loop.py at a tiny size on the real SmolLM2-135M: both backends, same output, a table."""

from __future__ import annotations

import json

import pytest

from decoding.loop_bench import backends_table

pytestmark = [pytest.mark.slow, pytest.mark.benchmark]  # a benchmark command (BENCHMARKS.md), not in the README's test command


def test_bench_loop_compares_both_backends(smollm2, load_example, tmp_path):
    ex = load_example("bench_loop")
    res = ex.main(n_prompts=2, max_new_tokens=6, repeats=1, threads=1, out=tmp_path)
    assert set(res["per_arm"]) == {"plain", "lookup-n3-k3", "lookup-n3-k10"}
    for arm, r in res["per_arm"].items():
        assert r["identical"] == "2/2 generate, 2/2 loop", (arm, r)
        assert r["same_target_calls"] and r["generate_ms_per_token"] > 0 and r["loop_ms_per_token"] > 0
    assert res["per_arm"]["plain"]["loop_speedup_over_its_plain"] == pytest.approx(1.0)
    assert json.loads((tmp_path / "bench_loop.json").read_text())["n_prompts"] == 2
    assert "| lookup-n3-k10 |" in backends_table(res)
