"""examples/context_signals.py at a tiny size on a real tiny replay log."""

from __future__ import annotations

import json

import pytest


def test_context_signals_tiny(tiny_joint_log, tmp_path, capsys, load_example):
    cs = load_example("context_signals")
    res = cs.main(tiny_joint_log, tmp_path / "cs", featurizers=("hashed", "prompt-stats"), learners=("regression",),
                  sizes=(4, 100), repeats=2, progress=False)
    assert res["n_train"] == 10 and res["n_validation"] == 8
    curves = res["curves"]
    # size 4: two seeded draws; the whole train split (100 capped to 10): one
    assert sorted({(c["featurizer"], c["size"]) for c in curves}) == [("hashed", 4), ("hashed", 10), ("prompt-stats", 4), ("prompt-stats", 10)]
    assert sum(1 for c in curves if c["size"] == 4) == 4 and sum(1 for c in curves if c["size"] == 10) == 2
    ref = res["references"]
    assert all(c["value"] <= ref["oracle"] + 1e-12 for c in curves)
    assert ref["fixed:plain"] == pytest.approx(1.0) and ref["domain label (best arm per domain)"] <= ref["oracle"] + 1e-12
    assert set(res["featurizer_seconds_per_prompt"]) == {"hashed", "prompt-stats"}
    assert all(v > 0 for v in res["featurizer_seconds_per_prompt"].values())
    assert (tmp_path / "cs" / "context_signals.png").stat().st_size > 1000
    assert json.loads((tmp_path / "cs" / "context_signals.json").read_text())["n_validation"] == 8
    cs.print_table(res)
    assert "featurizer cost per prompt" in capsys.readouterr().out


def test_sizes_for():
    from bandit.pipeline import log2_sizes  # the example's learning-curve sizes

    assert log2_sizes(300, start=64) == [64, 128, 256, 300]
    assert log2_sizes(10, start=64) == [10]
