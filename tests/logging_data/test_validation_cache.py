"""require_valid_log's fast path: an unchanged log is not validated again; any change is."""

from __future__ import annotations

import pytest

import logging_data.io as io
from bandit.testing import simulated_outcomes, write_simulated_log
from logging_data import LogValidationError, open_log
from logging_data.io import VALIDATED_FILE, require_valid_log


@pytest.fixture
def log_dir(tmp_path):
    write_simulated_log(tmp_path / "log", n_prompts=30)
    return tmp_path / "log"


def _count_validations(monkeypatch) -> list[int]:
    calls = []
    real = io.validate_log

    def counting(path):
        calls.append(1)
        return real(path)

    monkeypatch.setattr(io, "validate_log", counting)
    return calls


def test_an_unchanged_log_is_validated_once(log_dir, monkeypatch):
    calls = _count_validations(monkeypatch)
    require_valid_log(log_dir)
    assert (log_dir / VALIDATED_FILE).exists()
    require_valid_log(log_dir)
    require_valid_log(log_dir)
    assert len(calls) == 1


def test_an_append_makes_the_next_reader_validate_again(log_dir, monkeypatch):
    calls = _count_validations(monkeypatch)
    require_valid_log(log_dir)
    open_log(log_dir).append("outcomes", simulated_outcomes(3, 3, 3, seed=4).assign(query_id=lambda f: "more-" + f["query_id"].astype(str)))
    require_valid_log(log_dir)
    assert len(calls) == 2


def test_a_part_changed_after_the_check_is_caught(log_dir):
    require_valid_log(log_dir)
    part = open_log(log_dir).parts("outcomes")[0]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # truncated in place
    with pytest.raises(LogValidationError, match="unreadable Parquet"):
        require_valid_log(log_dir)


def test_a_stray_file_added_after_the_check_is_caught(log_dir):
    require_valid_log(log_dir)
    (log_dir / "outcomes" / "notes.csv").write_text("a,b\n")
    with pytest.raises(LogValidationError, match="notes.csv: not a part of this log"):
        require_valid_log(log_dir)


def test_a_log_that_cannot_be_written_is_validated_every_time(log_dir, monkeypatch):
    calls = _count_validations(monkeypatch)

    def read_only(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(io, "write_text_atomic", read_only)  # as on a read-only path (the tests may run as root)
    require_valid_log(log_dir)
    require_valid_log(log_dir)
    assert len(calls) == 2 and not (log_dir / VALIDATED_FILE).exists()


def test_a_cache_from_another_log_state_is_not_trusted(log_dir, monkeypatch):
    require_valid_log(log_dir)
    (log_dir / VALIDATED_FILE).write_text('{"schema_version": "1.0", "files": []}\n')
    calls = _count_validations(monkeypatch)
    require_valid_log(log_dir)
    assert len(calls) == 1
