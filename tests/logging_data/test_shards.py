"""Shards of prompt keys and the writer locks that let shard writers share one log."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit.testing import write_simulated_log
from logging_data import open_log
from logging_data.io import LogBusyError, check_new_log_path, creating
from logging_data.shards import Shard, parse_shard, shard_of


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=60, unique=True), st.integers(1, 9))
@settings(max_examples=60, deadline=None)
def test_shards_partition_the_keys(keys, n):
    owners = [[i for i in range(n) if Shard(i, n).holds(k)] for k in keys]
    assert all(len(o) == 1 for o in owners)  # every key in exactly one shard
    masks = [Shard(i, n).mask(keys) for i in range(n)]
    assert sum(int(m.sum()) for m in masks) == len(keys)


def test_the_hash_is_stable_across_processes_and_versions():
    # fixed values: a change of the hash would move keys between shards of logs being built
    assert [shard_of(k, 7) for k in ("q00", "q01", "tran-ca180334afa8c538", "é")] == [5, 1, 5, 2]
    assert shard_of("q00", 1) == 0
    import hashlib

    assert shard_of("q00", 1000) == int.from_bytes(hashlib.blake2b(b"q00", digest_size=8).digest(), "big") % 1000


def test_shards_spread_keys_evenly():
    keys = [f"q{i}" for i in range(4000)]
    sizes = [int(Shard(i, 4).mask(keys).sum()) for i in range(4)]
    assert min(sizes) > 900 and max(sizes) < 1100, sizes


@pytest.mark.parametrize("spec, message", [
    ("2", "written I/N"), ("a/b", "written I/N"), ("1/2/3", "written I/N"), ("-1/2", "written I/N"),
    ("2/2", "0 <= I < N"), ("0/0", "N >= 1"), ("", "written I/N"),
])
def test_bad_shard_specs_are_refused_by_name(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_shard(spec)


def test_parse_shard():
    assert parse_shard(" 1 / 4 ") == Shard(1, 4) and str(Shard(1, 4)) == "1/4"


@pytest.fixture
def log(tmp_path):
    write_simulated_log(tmp_path / "log", n_prompts=8, decisions=False)
    return open_log(tmp_path / "log")


def test_writers_of_different_shards_share_the_log(log):
    with log.writer("a", Shard(0, 2)), log.writer("b", Shard(1, 2)):
        pass


def test_a_second_writer_of_the_same_shard_is_refused(log):
    with log.writer("first", Shard(0, 2)):
        with pytest.raises(LogBusyError, match=r"shard 0/2 .*`first`"):
            with log.writer("second", Shard(0, 2)):
                pass


def test_a_writer_of_another_shard_count_is_refused(log):
    with log.writer("halves", Shard(0, 2)):
        with pytest.raises(LogBusyError, match=r"shard 0/2 .*same shard count"):
            with log.writer("thirds", Shard(1, 3)):
                pass


def test_unsharded_and_sharded_writers_exclude_each_other(log):
    with log.writer("sharded", Shard(1, 2)):
        with pytest.raises(LogBusyError, match=r"shard writers .*shard 1/2 .*`sharded`"):
            with log.writer("whole"):
                pass
    with log.writer("whole"):
        with pytest.raises(LogBusyError, match=r"another process is writing this log .*`whole`"):
            with log.writer("sharded", Shard(0, 2)):
                pass
    with log.writer("whole again"):  # every lock was released
        pass


def test_lock_files_do_not_make_a_directory_unusable(tmp_path):
    target = tmp_path / "new"
    with creating(target):
        pass
    check_new_log_path(target)  # only .create.lock there: still a place for a new log
    (target / "._log.json.0123abcd.tmp").write_text("{")  # another shard writing the metadata right now
    (target / ".README-read-LOG-outcomes-or-LOG-decisions.txt.89ab.tmp").write_text("")
    check_new_log_path(target)
    (target / "stray.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty and is not a log .*stray.txt"):
        check_new_log_path(target)
