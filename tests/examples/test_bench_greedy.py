"""examples/bench_greedy.py at a tiny size: batched outputs equal the per-prompt loop's."""

from __future__ import annotations


def test_bench_greedy_tiny(tiny_joint_models_file, tiny_prompts, tmp_path, capsys, load_example):
    mod = load_example("bench_greedy")
    res = mod.main(tiny_prompts, tiny_joint_models_file, n_prompts=10, batch_sizes=(4,), threads=1, out=tmp_path, progress=False)
    single, batched = res["rows"]
    assert single["batch_size"] == 1 and batched["batch_size"] == 4
    assert single["tokens"] == batched["tokens"] > 0
    assert batched["identical"] == 1.0 and batched["tokens_per_s"] > 0
    assert (tmp_path / "bench_greedy.json").exists()
    mod.print_result(res)
    assert "batched, length-sorted" in capsys.readouterr().out
