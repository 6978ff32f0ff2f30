"""examples/bench_greedy.py at a tiny size: batched outputs equal the per-prompt loop's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_greedy_tiny(tiny_joint_models_file, tiny_prompts, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_greedy", ROOT / "examples" / "bench_greedy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(tiny_prompts, tiny_joint_models_file, n_prompts=10, batch_sizes=(4,), threads=1, out=tmp_path, progress=False)
    single, batched = res["rows"]
    assert single["batch_size"] == 1 and batched["batch_size"] == 4
    assert single["tokens"] == batched["tokens"] > 0
    assert batched["identical"] == 1.0 and batched["tokens_per_s"] > 0
    assert (tmp_path / "bench_greedy.json").exists()
    mod.print_result(res)
    assert "batched, length-sorted" in capsys.readouterr().out
