"""Schema evolution: a log written by today's version stays valid and readable when a later version
adds a column, and reading it fills the new column with nulls.

``tests/data/logs/v1.0``, ``v1.1`` and ``v1.2`` were written by this package at schema 1.0, 1.1 and
1.2 (1.2: ``v1.1``'s rows with ``n_prompt_tokens``) and are kept as they are: each must validate and read under every later version of the package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

import logging_data.schema as schema
import logging_data.validate as validate
from bandit.testing import simulated_outcomes
from logging_data import columns, open_log, validate_log
from logging_data.schema import Column, version_key

FROZEN = Path(__file__).resolve().parents[1] / "data" / "logs" / "v1.0"
FROZEN_LOGS = {v: FROZEN.parent / f"v{v}" for v in ("1.0", "1.1", "1.2")}


@pytest.mark.parametrize("version", sorted(FROZEN_LOGS))
def test_each_frozen_log_is_valid_and_reads_every_declared_column(version):
    report = validate_log(FROZEN_LOGS[version])
    assert report.ok, report
    log = open_log(FROZEN_LOGS[version])
    assert log.metadata.schema_version == version
    for table in ("outcomes", "decisions"):
        frame = log.read(table)
        assert len(frame) > 0
        assert [c.name for c in columns(table)] == [c for c in frame.columns if not c.startswith("x_")]


def test_the_1_1_columns_are_filled_in_the_1_1_log_and_null_in_the_1_0_log():
    assert open_log(FROZEN_LOGS["1.1"]).read("outcomes")["token_match_rate"].eq(1.0).all()
    assert open_log(FROZEN_LOGS["1.0"]).read("decisions")["token_match_rate"].isna().all()


def test_the_1_2_prompt_lengths_are_filled_in_the_1_2_log_and_null_before():
    assert open_log(FROZEN_LOGS["1.2"]).read("outcomes")["n_prompt_tokens"].ge(1).all()
    for version in ("1.0", "1.1"):
        assert open_log(FROZEN_LOGS[version]).read("outcomes")["n_prompt_tokens"].isna().all()


def test_a_prompt_length_below_one_token_is_refused_by_name(tmp_path):
    from logging_data.validate import check_frame

    log = open_log(FROZEN_LOGS["1.2"])
    rows = log.read("outcomes").head(3).copy()
    rows["n_prompt_tokens"] = [5, 0, -2]
    problems = [p for p in check_frame("outcomes", rows, log.metadata) if p.column == "n_prompt_tokens"]
    assert len(problems) == 1 and "2 row(s) are not a count >= 1" in problems[0].message


def test_every_column_added_after_1_0_is_nullable():
    for table in ("outcomes", "decisions"):
        for col in columns(table):
            assert version_key(col.since) <= version_key(schema.SCHEMA_VERSION), col
            if col.since != "1.0":
                assert col.nullable, f"{table}.{col.name} was added in {col.since}: a new column must be nullable"


def test_version_keys_compare_numerically():
    assert version_key("1.10") > version_key("1.9") > version_key("1.0")
    with pytest.raises(ValueError, match="numbers separated by dots"):
        version_key("one")


@pytest.fixture
def next_version(monkeypatch):
    """The package as it would be after adding a nullable outcomes column at the next minor version."""
    major, minor = schema.SCHEMA_VERSION.split(".")
    nxt = f"{major}.{int(minor) + 1}"
    added = Column("draft_entropy", pa.float64(), True, f"A column added in {nxt} (test).", since=nxt)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", nxt)
    monkeypatch.setattr(validate, "SCHEMA_VERSION", nxt)
    monkeypatch.setitem(schema.COLUMNS, "outcomes", schema.OUTCOME_COLUMNS + (added,))
    return added


def test_an_older_log_stays_valid_and_reads_the_new_column_as_nulls(next_version, tmp_path):
    log_dir = tmp_path / "log"
    shutil.copytree(FROZEN, log_dir)
    assert validate_log(log_dir).ok, validate_log(log_dir)
    log = open_log(log_dir)
    frame = log.read("outcomes")
    assert next_version.name in frame.columns and frame[next_version.name].isna().all()
    assert log.read("outcomes", ["query_id", next_version.name])[next_version.name].isna().all()
    # rows written now carry the new column; the log stays valid and reads both kinds of part
    more = simulated_outcomes(4, 3, 3, seed=9).assign(query_id=lambda f: "new-" + f["query_id"].astype(str), draft_entropy=0.5)
    log.append("outcomes", more)
    assert validate_log(log_dir).ok, validate_log(log_dir)
    values = open_log(log_dir).read("outcomes")[next_version.name]
    assert values.notna().sum() == len(more) and values.isna().sum() == len(frame)


def test_a_log_made_at_the_new_version_must_have_the_new_column(next_version):
    rows = open_log(FROZEN).read("outcomes").drop(columns=[next_version.name], errors="ignore")
    table = pa.Table.from_pandas(rows, preserve_index=False)
    problems = validate.check_types("outcomes", table.schema, next_version.since)
    assert [p.column for p in problems] == [next_version.name]
    assert validate.check_types("outcomes", table.schema, "1.0") == []


def test_an_older_package_reads_a_newer_minor_log_with_columns_it_does_not_know():
    data = pa.Table.from_pandas(open_log(FROZEN).read("outcomes").assign(from_the_future=1.0), preserve_index=False)
    assert [p.column for p in validate.check_types("outcomes", data.schema, "1.0")] == ["from_the_future"]
    assert validate.check_types("outcomes", data.schema, "1.7") == []
