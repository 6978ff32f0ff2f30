"""``bandit-log validate`` / ``describe`` and the CLI's edge: JSON on stdout only, one-line
errors with exit 1, instant ``--help`` without heavy imports, an example in every help."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import COMMANDS, cli
from logging_data import Arm, LogMetadata, RewardDefinition, create_log, validate_log

HEAVY = ("torch", "transformers", "vowpalwabbit", "d3rlpy")


def _outcomes(ids, arms=("none", "d1")):
    rows = [{"query_id": q, "prompt": f"text {q}", "domain": "code" if i % 2 else None, "split": "train", "arm": a, "reward": 0.1 * (i + j)}
            for i, q in enumerate(ids) for j, a in enumerate(arms)]
    return pd.DataFrame(rows)


@pytest.fixture
def log_dir(tmp_path):
    log = create_log(tmp_path / "log", LogMetadata(arms=(Arm("none", "none"), Arm("d1", "draft", 0.25)), reward=RewardDefinition(alpha=0.2)))
    log.append("outcomes", _outcomes(["q1", "q2", "q3"]))
    log.append("decisions", pd.DataFrame({"query_id": ["q1", "q2"], "prompt": ["text q1", "text q2"], "domain": [None, "code"], "split": ["train", "train"],
                                          "arm": ["d1", "none"], "propensity": [0.5, 0.5], "reward": [0.1, 0.1], "policy_id": ["uniform", "uniform"]}))
    return log.root


def _break(root):
    """Add a part with a NaN reward and an unknown arm, written behind the library's back."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from logging_data import to_arrow
    from logging_data.io import METADATA_KEY, TABLE_KEY

    t = to_arrow("outcomes", _outcomes(["q9"]))
    t = t.set_column(t.schema.get_field_index("reward"), "reward", pa.array([float("nan"), 0.2]))
    t = t.set_column(t.schema.get_field_index("arm"), "arm", pa.array(["none", "rogue"]))
    meta = json.loads((root / "_log.json").read_text())
    t = t.replace_schema_metadata({METADATA_KEY: LogMetadata.from_json(meta).dumps().encode(), TABLE_KEY: b"outcomes"})
    pq.write_table(t, root / "outcomes" / "part-99999999999999999999-bad.parquet")


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def test_validate_ok(log_dir):
    r = _run("validate", str(log_dir))
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == f"{log_dir}: ok (outcomes: 6 rows in 1 part(s), decisions: 2 rows in 1 part(s))"


def test_validate_lists_every_problem_and_exits_1(log_dir):
    _break(log_dir)
    r = _run("validate", str(log_dir))
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines[0] == f"{log_dir}: 2 problem(s) (outcomes: 8 rows in 2 part(s), decisions: 2 rows in 1 part(s))"
    assert "  - outcomes.reward: 1 row(s) are null or NaN; the column is required (first: row 6 query_id=q9)" in lines
    assert any(line.startswith("  - outcomes.arm: 1 row(s) name arms the metadata does not list (rogue;") and "(first: row 7 query_id=q9)" in line for line in lines)
    assert r.stderr == ""


def test_validate_json_is_one_document_on_stdout(log_dir):
    _break(log_dir)
    r = _run("validate", str(log_dir), "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc == json.loads(json.dumps(validate_log(log_dir).to_json()))
    assert doc["ok"] is False and {p["column"] for p in doc["problems"]} == {"reward", "arm"}
    assert doc["problems"][0]["first_rows"] == ["row 6 query_id=q9"]


def test_validate_clean_removes_stale_temporaries(log_dir):
    stale = log_dir / "outcomes" / ".part-123.parquet.tmp"
    stale.write_bytes(b"half a part")
    r = _run("validate", str(log_dir))
    assert r.exit_code == 0 and "note: 1 temporary file(s) from interrupted appends" in r.stdout and stale.exists()
    r = _run("validate", str(log_dir), "--clean", "--json")
    assert r.exit_code == 0 and not stale.exists()
    assert json.loads(r.stdout)["notes"] == []
    assert "removed 1 temporary file(s)" in r.stderr


def test_describe_text(log_dir):
    r = _run("describe", str(log_dir))
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "rows: outcomes 6 in 1 part(s), decisions 2 in 1 part(s)" in out
    assert "reward: alignment (align_accept - 0.2 x arm_cost)" in out
    assert "propensity range: [0.5, 0.5]" in out
    table = [line.split() for line in out.splitlines()]
    assert ["d1", "1", "draft", "0.25"] in table  # the arms table
    assert ["d1", "3", "0.2", "0.1", "0.1", "0.3"] in table  # outcomes reward by arm: count mean std min max
    assert ["(none)", "4", "0.15", "0.1291", "0", "0.3"] in table  # outcomes reward by domain, rows without one
    assert ["uniform", "2", "0.5", "0.5", "0.1"] in table  # decisions per policy


def test_describe_json_is_the_library_summary(log_dir):
    from logging_data.describe import describe_log

    r = _run("describe", str(log_dir), "--json")
    assert r.exit_code == 0 and r.stderr == ""
    assert json.loads(r.stdout) == json.loads(json.dumps(describe_log(str(log_dir))))


def _measured_log(tmp_path, arm_wall):
    """A measured log of two prompts (plain 10 s and 30 s, 10 and 30 new tokens) and prompt-lookup arms
    with the same counts (5 and 20 target calls: count speed-up 40 / 25 = 1.6 when a step costs 1 s)
    and the given wall times; its calibration prices a target step at 1 s and nothing else."""
    from decoding.pricing import Calibration

    arms = ("plain", *arm_wall)
    meta = LogMetadata(arms=tuple(Arm(a, "none" if a == "plain" else "prompt_lookup") for a in arms),
                       reward=RewardDefinition(kind="speedup_count", metric=""), extra={"calibration": Calibration(target_step_s=1.0).to_json()})
    rows = []
    for i, (q, n, plain_s) in enumerate([("q1", 10, 10.0), ("q2", 30, 30.0)]):
        for a in arms:
            calls, wall = (n, plain_s) if a == "plain" else ((5, 20)[i], arm_wall[a][i])
            rows.append({"query_id": q, "prompt": f"text {q}", "domain": "code", "split": "test", "arm": a, "reward": n / calls,
                         "n_new_tokens": n, "target_calls": calls, "draft_calls": 0, "draft_tokens": 0 if a == "plain" else 2 * calls,
                         "wall_time_s": wall, "plain_wall_time_s": plain_s, "speedup_count": n / calls, "lossless": True})
    create_log(tmp_path / "measured", meta).append("outcomes", pd.DataFrame(rows))
    return tmp_path / "measured"


def test_describe_checks_the_count_model_against_the_wall_clock_of_a_measured_log(tmp_path):
    log = _measured_log(tmp_path, {"true": (5.0, 20.0), "slow": (8.0, 24.0)})  # wall 40/25 = 1.6 and 40/32 = 1.25
    r = _run("describe", str(log), "--json")
    assert r.exit_code == 0, r.output
    rows = {x["arm"]: x for x in json.loads(r.stdout)["count_against_wall"]}
    assert rows["true"]["wall"] == pytest.approx(1.6) and rows["true"]["count"] == pytest.approx(1.6)
    assert rows["slow"]["count_over_wall"] == pytest.approx(1.6 / 1.25) and rows["slow"]["n_prompts"] == 2
    assert rows["plain"]["count_over_wall"] == pytest.approx(1.0) and rows["slow"]["lossless"]
    text = _run("describe", str(log)).stdout
    assert "count model against the wall clock" in text
    assert "beyond 10%: slow (1.28)" in text and "true (" not in text.split("beyond")[1]
    text = _run("describe", str(_measured_log(tmp_path / "b", {"true": (5.0, 20.0)}))).stdout
    assert "every arm within 10%" in text


def test_describe_of_an_unmeasured_log_has_no_wall_clock_check(log_dir):
    r = _run("describe", str(log_dir), "--json")
    assert "count_against_wall" not in json.loads(r.stdout)
    assert "wall clock" not in _run("describe", str(log_dir)).stdout


@pytest.mark.parametrize("command", ["validate", "describe"])
@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_not_a_log_is_a_one_line_error(tmp_path, command, as_json):
    r = _run(command, str(tmp_path / "missing"), *as_json)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr == f"error: {tmp_path / 'missing'}: no such log directory\n"


def test_error_has_no_traceback_in_a_real_process(tmp_path):
    (tmp_path / "log").mkdir()
    proc = subprocess.run([sys.executable, "-m", "bandit.cli.main", "describe", str(tmp_path / "log")], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "BANDIT_LOG_DEBUG"})
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "not a log (no _log.json)" in proc.stderr


def test_help_and_log_commands_import_no_heavy_library(log_dir):
    code = textwrap.dedent(
        f"""
        import sys
        from click.testing import CliRunner
        from bandit.cli.main import cli
        for args in (["--help"], ["validate", {str(log_dir)!r}], ["describe", {str(log_dir)!r}, "--json"]):
            r = CliRunner().invoke(cli, args)
            assert r.exit_code == 0, (args, r.output)
        print(",".join(sorted(m for m in {HEAVY!r} if m in sys.modules)))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_top_level_help_and_version():
    r = _run("--help")
    assert r.exit_code == 0 and "validate" in r.stdout and "describe" in r.stdout
    r = _run("--version")
    assert r.exit_code == 0 and r.stdout.startswith("bandit-log, version ")


AVAILABLE = [name for name, (module, _, _) in COMMANDS.items() if importlib.util.find_spec(module) is not None]


@pytest.mark.parametrize("name", AVAILABLE)
def test_every_registered_command_has_help_with_an_example(name):
    r = _run(name, "--help")
    assert r.exit_code == 0, r.output
    assert "Example" in r.stdout and f"bandit-log {name}" in r.stdout.split("Example", 1)[1]
