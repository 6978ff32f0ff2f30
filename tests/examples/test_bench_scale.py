"""examples/bench_scale.py at a tiny size: Ray pools build the same log as one process."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_bench_scale_tiny(tiny_joint_models_file, tiny_prompts, tiny_joint_log, tiny_log, tmp_path, capsys, load_example):
    pytest.importorskip("ray")
    mod = load_example("bench_scale")
    res = mod.main(tiny_prompts, tiny_joint_models_file, n_prompts=12, batch_size=4, workers=(1, 2), calibration=tiny_joint_log,
                   measured=tiny_log, out=tmp_path / "scale", progress=False, projected_prompts=1000)
    one, shards, ray1, ray2 = res["rows"]
    assert one["rows"] == shards["rows"] == ray1["rows"] == ray2["rows"] == 12 * res["n_arms"]
    assert shards["equal_to_one_process"] and ray1["equal_to_one_process"] and ray2["equal_to_one_process"]
    p = res["projection"]
    assert p["replay_build_one_worker_h"] > 0 and p["measured_build_per_prompt_s"] > 0
    assert (tmp_path / "scale" / "bench_scale.json").exists()
    mod.print_result(res)
    assert "Projected for 1,000 prompts" in capsys.readouterr().out
