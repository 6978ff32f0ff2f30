"""examples/gpu_check.sh end to end at its tiny size on this CPU, the model given in two parts as on a GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "gpu_check.sh"
pytestmark = pytest.mark.slow


def _split(src: Path, folder: Path, size: int) -> list[Path]:
    data = src.read_bytes()
    parts = []
    for i in range(0, len(data), size):
        part = folder / f"model.gguf.part-{i // size:02d}"
        part.write_bytes(data[i:i + size])
        parts.append(part)
    return parts


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900, **kw)


@pytest.mark.benchmark  # a benchmark command (BENCHMARKS.md), not in the README's test command
def test_the_check_runs_end_to_end_from_model_parts(smollm2, tmp_path):
    from decoding.packaged import packaged_model_path

    parts = _split(Path(packaged_model_path("smollm2-135m")), tmp_path, 60 * 2**20)
    assert len(parts) == 2 and all(p.stat().st_size <= 60 * 2**20 for p in parts)
    out = tmp_path / "out"
    r = _run(["--out", str(out), "--device", "cpu", "--size", "tiny", "--threads", "2", *map(str, parts)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "joined 2 parts" in r.stderr and "# Device check" in r.stdout
    for name in ("models.toml", "profile.json", "prompts.parquet", "log", "quickstart", "summary.json", "summary.md"):
        assert (out / name).exists(), name
    s = json.loads((out / "summary.json").read_text())
    assert s["device"]["kind"] == "cpu" and s["size"] == "tiny"
    assert s["identical_to_greedy"]["share_identical"] == 1.0 and s["identical_to_greedy"]["log_assisted_runs"] == 12 * 4
    assert s["build"]["n_rows"] == 12 * 5 and s["build"]["n_lossless_failures"] == 0
    sd = s["static_vs_dynamic"]
    assert sd["dynamic_ms_per_token"] > 0 and sd.get("static_same_tokens_as_dynamic") is True, sd
    loop = s["loop_vs_generate"]
    assert "error" not in loop, loop
    assert set(loop["per_arm"]) == set(s["arms"]) and all(r["identical"] == "1/1 generate, 1/1 loop" for r in loop["per_arm"].values())
    assert all(r["same_target_calls"] for arm, r in loop["per_arm"].items() if not arm.startswith("early-exit"))
    acc = s["profile_accuracy"]["arms"]
    assert set(acc) == {"lookup-n3-k3", "lookup-n3-k10", "lookup-n2-k5", "early-exit-12"}
    assert all(a["all_prompts"]["count"] > 0 and a["all_prompts"]["wall"] > 0 for a in acc.values())
    assert s["quickstart"]["winner"] and s["seconds"]["total"] > 0
    assert set(s["learners"]) >= {"regression", "classifier", "taskspec", "reinforce"}
    profile = json.loads((out / "profile.json").read_text())
    assert profile["calibration"]["arm_step_s"]["early-exit-12"] > 0  # the one arm that runs a model
    from logging_data import open_log

    assert open_log(out / "log").metadata.reward.priced_by.startswith("step costs given to the build")


@pytest.mark.parametrize("args, message", [
    ([], "--out OUT is required"),
    (["--out", "{tmp}/o"], "give the model"),
    (["--out", "{tmp}/o", "{tmp}/missing.gguf"], "no such file"),
    (["--out", "{tmp}/o", "{tmp}/a", "{tmp}/missing"], "model part {tmp}/missing: no such file"),
    (["--out", "{tmp}/o", "{tmp}/a", "{tmp}/a"], "not a GGUF file"),
    (["--out", "{tmp}/o", "--bogus", "{tmp}/a"], "unknown option --bogus"),
])
def test_bad_calls_say_what_is_wrong(tmp_path, args, message):
    (tmp_path / "a").write_bytes(b"not a model")
    r = _run([a.format(tmp=tmp_path) for a in args])
    assert r.returncode == 2 and message.format(tmp=tmp_path) in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()
