"""Sharded and Ray builds equal a single-process build, key for key and count for count; a killed
shard or worker loses and duplicates nothing. Real processes, tiny real models."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from logging_data import open_log, validate_log

from decoding.models import ArmConfig

REPO = Path(__file__).resolve().parents[2]
ARMS = (ArmConfig.of("plain", "none"), ArmConfig.of("lookup", "prompt_lookup", prompt_lookup_num_tokens=3),
        ArmConfig.of("lookup1", "prompt_lookup", prompt_lookup_num_tokens=3, max_matching_ngram_size=1))
COUNTS = ["n_new_tokens", "target_calls", "draft_calls", "draft_tokens", "accepted_tokens", "speedup_count"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="module")
def inputs(write_tiny_models, tmp_path_factory):
    """A prompts file (24 prompts), a models file (plain + two prompt-lookup arms) and a cost profile,
    so every build below prices its counts the same (exact replayed counts, no timing)."""
    import sys as _sys

    _sys.path.insert(0, str(REPO / "tests"))
    import conftest as shared

    root = tmp_path_factory.mktemp("sharded")
    words = " ".join(shared.SENTENCES).split()
    texts = list(dict.fromkeys(" ".join(words[i:i + 5 + i % 4]) for i in range(40)))[:24]
    pd.DataFrame({"query_id": [f"q{i:02d}" for i in range(len(texts))], "prompt": texts,
                  "domain": ["code" if i % 2 else "translate" for i in range(len(texts))],
                  "split": [("train", "validation", "test")[i % 3] for i in range(len(texts))]}).to_parquet(root / "prompts.parquet")
    write_tiny_models(root / "models.toml", ARMS, max_new_tokens=8)
    (root / "costs.json").write_text('{"calibration": {"plain_step_s": 0.01, "arm_step_s": {}, "context_len": 64, '
                                     '"device": "cpu", "n_threads": 1, "repeats": 1, "round_overhead_s": 0.001, "target_step_s": 0.01, '
                                     '"verify_token_s": 0.0005}}')
    return root


def _cmd(inputs: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bandit.cli.main", "build", str(inputs / "prompts.parquet"), "--models",
            str(inputs / "models.toml"), "--out", str(out), "--alignment-only", "--reward", "speedup_count",
            "--calibration", str(inputs / "costs.json"), "--threads", "1", "--batch-size", "1", *extra]


def _rows(log_dir: Path) -> pd.DataFrame:
    report = validate_log(log_dir)
    assert report.ok, report
    frame = open_log(log_dir).read("outcomes")
    assert not frame.duplicated(["query_id", "arm"]).any()
    return frame.sort_values(["query_id", "arm"]).reset_index(drop=True)[["query_id", "arm", "split", *COUNTS, "target_output"]]


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "log"
    r = subprocess.run(_cmd(inputs, out), env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = _rows(out)
    assert len(rows) == 24 * 3
    return rows


def test_two_shard_processes_build_the_same_log_as_one_process(inputs, single, tmp_path):
    out = tmp_path / "log"
    procs = [subprocess.Popen(_cmd(inputs, out, "--shard", f"{i}/2"), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    pd.testing.assert_frame_equal(_rows(out), single)
    meta = open_log(out).metadata.extra
    assert meta["build"]["shards"] == 2 and meta["command"].count("--shard") == 1
    # a rerun of either shard finds nothing to do
    again = subprocess.run(_cmd(inputs, out, "--shard", "1/2", "--json"), env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and '"n_rows_written": 0' in again.stdout


def test_a_killed_shard_resumes_without_losing_or_duplicating_a_key(inputs, single, tmp_path):
    out = tmp_path / "log"
    proc = subprocess.Popen(_cmd(inputs, out, "--shard", "0/2"), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "outcomes").glob("part-*.parquet"))) >= 2:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = open_log(out).n_rows("outcomes")
    shard0 = int(single["query_id"].map(lambda q: __import__("logging_data.shards").shards.shard_of(q, 2) == 0).sum())
    assert 0 < written < shard0, (written, shard0)  # killed mid-shard
    for i in (0, 1):  # the rerun of the killed shard, then the other
        r = subprocess.run(_cmd(inputs, out, "--shard", f"{i}/2"), env=_env(), capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
    pd.testing.assert_frame_equal(_rows(out), single)


def test_shard_and_ray_flags_are_checked_before_any_work(inputs, tmp_path):
    out = tmp_path / "log"
    for extra, message in [(("--shard", "2/2"), "0 <= I < N"), (("--shard", "x"), "written I/N"),
                           (("--shard", "0/2", "--ray"), "either --ray or --shard")]:
        r = subprocess.run(_cmd(inputs, out, *extra), env=_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and message in r.stderr, (extra, r.stderr[-800:])
        assert not out.exists()


# -- Ray ------------------------------------------------------------------------------------------

def _ray_build(inputs: Path, out: Path, **settings):
    from decoding.build import BuildConfig, reward_definition
    from decoding.pricing import load_calibration
    from decoding.models import load_models_config
    from decoding.ray_build import RaySettings, build_log_ray

    cfg = BuildConfig(reward=reward_definition("speedup_count"), measure=False, batch_size=1)
    return build_log_ray(inputs / "prompts.parquet", load_models_config(inputs / "models.toml"), out, cfg,
                         RaySettings(**settings), progress=False, threads=1,
                         calibration=load_calibration(inputs / "costs.json"), command="test ray build")


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield
    ray.shutdown()


@pytest.mark.slow
def test_a_ray_build_equals_a_single_process_build(inputs, single, tmp_path, ray_cluster):
    out = tmp_path / "log"
    summary = _ray_build(inputs, out, workers=2, shards=4)
    assert summary.n_rows_written == 72 and summary.n_prompts_decoded == 24
    pd.testing.assert_frame_equal(_rows(out), single)
    extra = open_log(out).metadata.extra
    assert extra["build"]["ray"]["workers"] == 2 and extra["build"]["ray"]["shards"] == 4
    assert len(extra["build"]["ray"]["worker_hardware"]) == 2 and extra["command"] == "test ray build"
    assert _ray_build(inputs, out, workers=2, shards=4).n_rows_written == 0  # complete: nothing sent to a worker


def _worker_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"_BuildWorker" in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_a_killed_ray_worker_is_replaced_and_its_shard_retried(inputs, single, tmp_path, ray_cluster):
    out = tmp_path / "log"
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(summary=_ray_build(inputs, out, workers=2, shards=2)))
    thread.start()
    killed = None
    deadline = time.time() + 300
    while time.time() < deadline and thread.is_alive():
        pids = _worker_pids()
        if pids and (out / "outcomes").exists() and any((out / "outcomes").glob("part-*.parquet")):
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.01)
    thread.join(600)
    assert killed is not None, "the build finished before a worker could be killed"
    assert "summary" in result
    pd.testing.assert_frame_equal(_rows(out), single)
