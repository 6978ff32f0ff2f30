"""``bandit-log prompts`` on the real sources of this machine (tiny sizes)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from bandit.cli.main import cli


def run(args: list[str]):
    return CliRunner().invoke(cli, ["prompts", *args])


def test_builds_writes_and_reports_json(tmp_path):
    out = tmp_path / "p.parquet"
    result = run(["--out", str(out), "--per-domain", "3", "--seed", "7", "--domains", "code,translate", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # exactly one JSON document on stdout
    assert doc["out"] == str(out) and doc["n_prompts"] == len(pd.read_parquet(out))
    assert set(doc["counts"]) <= {"code", "translate"} and doc["counts"]["code"] == 3
    assert "prompts: code: found cpython-stdlib" in result.stderr
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["query_id", "prompt", "domain", "split", "x_source", "x_reference"]
    side = json.loads((tmp_path / "p.sources.json").read_text())
    assert side["config"]["seed"] == 7 and side["counts"] == doc["counts"]


def test_same_seed_same_bytes(tmp_path):
    for name in ("a", "b"):
        assert run(["--out", str(tmp_path / f"{name}.parquet"), "--per-domain", "2", "--domains", "code,summarize"]).exit_code == 0
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_empty_locale_dir_skips_translation(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "p.parquet"
    result = run(["--out", str(out), "--per-domain", "2", "--domains", "code,translate", "--locale-dir", str(empty), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == {"translate": "no source found"}
    assert "translate: no source found, skipped" in result.stderr
    assert set(pd.read_parquet(out)["domain"]) == {"code"}


@pytest.mark.parametrize(
    "args, code, pattern",
    [
        (["--per-domain", "0"], 1, r"error: `per_domain` must be an integer >= 1; got 0"),
        (["--seed", "-3"], 1, r"error: `seed` must be an integer >= 0; got -3"),
        (["--domains", "code,poems"], 1, r"error: unknown domain 'poems' in `domains`"),
        (["--domains", ","], 2, r"expected a comma-separated list"),
        (["--split", "0.6,0.4"], 2, r"expected 3 comma-separated fractions"),
        (["--split", "a,b,c"], 2, r"expected numbers like 0.6,0.2,0.2; got 'a,b,c'"),
        (["--split", "0.7,0.2,0.2"], 1, r"error: `split` fractions must sum to 1"),
        (["--languages", "de,klingon"], 1, r"error: `languages` must be among de, fr, es, it"),
        (["--per-domain", "many"], 2, r"'many' is not a valid integer"),
    ],
)
def test_bad_arguments(tmp_path, args, code, pattern):
    out = tmp_path / "p.parquet"
    result = run(["--out", str(out), *args])
    assert result.exit_code == code, result.output
    assert re.search(pattern, result.output), result.output
    assert not out.exists()


def test_refuses_to_overwrite_and_leaves_the_file(tmp_path):
    out = tmp_path / "p.parquet"
    out.write_bytes(b"keep me")
    for extra in ([], ["--overwrite"]):  # --overwrite replaces a prompt set only, never another file
        result = run(["--out", str(out), "--per-domain", "1", "--domains", "code"] + extra)
        assert result.exit_code == 1 and "p.parquet: exists and is not a prompt set" in result.output
        assert out.read_bytes() == b"keep me"
    out = tmp_path / "q.parquet"
    assert run(["--out", str(out), "--per-domain", "1", "--domains", "code"]).exit_code == 0
    result = run(["--out", str(out), "--per-domain", "1", "--domains", "code"])
    assert result.exit_code == 1 and "exists; pass --overwrite" in result.output
    result = run(["--out", str(out), "--per-domain", "1", "--domains", "code", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) == 1


def test_help_has_an_example():
    result = CliRunner().invoke(cli, ["prompts", "--help"])
    assert result.exit_code == 0 and "bandit-log prompts --out prompts.parquet" in result.output
