"""Concurrent writers, with real processes: a key is never written twice, a second writer is refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from bandit.testing import write_simulated_log
from logging_data import open_log, validate_log
from logging_data.io import LogBusyError

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "bandit.cli.main"]

APPENDER = textwrap.dedent("""
    import sys, pandas as pd
    from logging_data import open_log
    from logging_data.validate import LogValidationError
    log = open_log(sys.argv[1])
    rows = pd.read_parquet(sys.argv[2])
    ok = dup = 0
    for start in range(0, len(rows), 5):
        try:
            log.append("decisions", rows.iloc[start:start + 5])
            ok += 1
        except LogValidationError as e:
            assert "duplicate" in str(e) or "already" in str(e), str(e)
            dup += 1
    print(ok, dup)
""")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_processes_appending_the_same_keys_write_each_key_once(tmp_path):
    log_dir = tmp_path / "log"
    write_simulated_log(log_dir, n_prompts=60, decisions=False)
    log = open_log(log_dir)
    outcomes = log.read("outcomes")
    first = outcomes.drop_duplicates("query_id")
    decisions = pd.DataFrame({
        "query_id": first["query_id"], "prompt": first["prompt"], "domain": first["domain"], "split": first["split"],
        "arm": first["arm"], "propensity": 1.0, "reward": first["reward"], "policy_id": "same",
    })
    rows = tmp_path / "rows.parquet"
    decisions.to_parquet(rows, index=False)
    script = tmp_path / "appender.py"
    script.write_text(APPENDER)
    procs = [subprocess.Popen([sys.executable, str(script), str(log_dir), str(rows)], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    ok = sum(int(out.split()[0]) for out, _ in results)
    assert ok == len(decisions) // 5  # every batch written by exactly one process
    written = open_log(log_dir).read("decisions")
    assert not written.duplicated(["query_id", "policy_id"]).any()
    assert len(written) == len(decisions)
    assert validate_log(log_dir).ok


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    log_dir = tmp_path / "log"
    write_simulated_log(log_dir, n_prompts=20, decisions=False)
    log = open_log(log_dir)
    with log.writer("first-writer --flag"):
        with pytest.raises(LogBusyError, match=rf"another process is writing this log \(pid {os.getpid()}, `first-writer --flag`"):
            with open_log(log_dir).writer("second"):
                pass
        r = subprocess.run(CLI + ["simulate", str(log_dir), "--policy", "uniform"], env=_env(), capture_output=True, text=True)
        assert r.returncode != 0
        assert "another process is writing this log" in r.stderr and "first-writer --flag" in r.stderr
        assert not open_log(log_dir).has("decisions")
    # released: the same command now writes
    r = subprocess.run(CLI + ["simulate", str(log_dir), "--policy", "uniform"], env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_writer_lock_dies_with_a_killed_process(tmp_path):
    log_dir = tmp_path / "log"
    write_simulated_log(log_dir, n_prompts=10, decisions=False)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from logging_data import open_log
        with open_log({str(log_dir)!r}).writer("holder"):
            print("held", flush=True)
            time.sleep(600)
    """)], env=_env(), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LogBusyError, match="holder"):
        with open_log(log_dir).writer("me"):
            pass
    holder.kill()
    holder.wait()
    with open_log(log_dir).writer("me"):
        holder_info = json.loads((log_dir / ".writer.lock").read_text())
        assert holder_info["pid"] == os.getpid() and holder_info["command"] == "me"


def test_two_simulates_at_once_never_duplicate(tmp_path):
    log_dir = tmp_path / "log"
    write_simulated_log(log_dir, n_prompts=200, decisions=False)
    cmd = CLI + ["simulate", str(log_dir), "--policy", "uniform", "--seed", "0"]
    procs = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0 and codes[1] != 0, results
    loser = next(err for p, (_, err) in zip(procs, results) if p.returncode != 0)
    assert "another process is writing this log" in loser or "already" in loser, loser
    written = open_log(log_dir).read("decisions")
    assert len(written) == 200 and not written.duplicated(["query_id", "policy_id"]).any()
    assert validate_log(log_dir).ok
