"""Reading and appending logs: round trips, refusals that leave the log intact, crash safety,
and plain readers (pandas, pyarrow, DuckDB) seeing what ``Log.read`` sees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logging_data import (
    Arm,
    LogError,
    LogMetadata,
    LogValidationError,
    RewardDefinition,
    create_log,
    open_log,
    arrow_schema,
    validate_log,
)

QUERY_COLS = ["query_id", "prompt", "domain", "split"]


def _records(frame: pd.DataFrame, cols: list[str]) -> list[tuple]:
    """Rows as tuples of plain Python values (nulls as None), sorted: comparable across readers."""
    out = []
    for row in frame[cols].astype(object).itertuples(index=False, name=None):
        out.append(tuple(None if (v is None or (not isinstance(v, str) and pd.isna(v))) else v for v in row))
    return sorted(out, key=repr)


# ---------------------------------------------------------------------------------------------
# round trips (hypothesis)

_long_text = st.builds(lambda piece, k: piece * k, st.text(min_size=1, max_size=4), st.integers(2_000, 20_000))
_prompt = st.one_of(st.just(""), st.text(max_size=200), _long_text)
_arm_names = st.lists(st.text(min_size=1, max_size=12).filter(lambda s: s.strip()), min_size=1, max_size=60, unique=True)
_query = st.tuples(_prompt, st.one_of(st.none(), st.text(max_size=12)), st.sampled_from([None, "train", "validation", "test"]))
_finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(arm_names=_arm_names, queries=st.lists(_query, max_size=6), n_chunks=st.integers(1, 3), data=st.data())
def test_round_trip_preserves_every_value(tmp_path_factory, arm_names, queries, n_chunks, data):
    meta = LogMetadata(
        arms=tuple(Arm(n, "draft", cost=float(i), attrs={"rank": i, "label": n}) for i, n in enumerate(arm_names)),
        reward=RewardDefinition("custom", "align_accept", 0.5, description="anything ✓"),
        extra={"note": "ünïcödé"},
    )
    root = tmp_path_factory.mktemp("rt") / "log"
    log = create_log(root, meta)
    rows, decisions = [], []
    for qi, (prompt, domain, split) in enumerate(queries):
        arms_here = data.draw(st.lists(st.sampled_from(arm_names), min_size=1, unique=True), label=f"arms of q{qi}")
        for arm in arms_here:
            rows.append({"query_id": f"q{qi}", "prompt": prompt, "domain": domain, "split": split, "arm": arm,
                         "reward": data.draw(_finite), "n_new_tokens": data.draw(st.integers(0, 2**40)),
                         "lossless": data.draw(st.none() | st.booleans())})
        decisions.append({"query_id": f"q{qi}", "prompt": prompt, "domain": domain, "split": split, "arm": arms_here[0],
                          "propensity": data.draw(st.floats(min_value=0, max_value=1, exclude_min=True)),
                          "reward": data.draw(_finite), "policy_id": "p✓"})
    expected = pd.DataFrame(rows, columns=QUERY_COLS + ["arm", "reward", "n_new_tokens", "lossless"])
    bounds = sorted({0, len(queries), *data.draw(st.lists(st.integers(0, len(queries)), max_size=n_chunks - 1))})
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        chunk_ids = {f"q{i}" for i in range(lo, hi)}
        log.append("outcomes", expected[expected["query_id"].isin(chunk_ids)])
    if decisions:
        log.append("decisions", pd.DataFrame(decisions))

    reopened = open_log(root)
    assert reopened.metadata == meta
    cols = list(expected.columns)
    got = reopened.read("outcomes")
    assert _records(got, cols) == _records(expected, cols)
    assert got["reward"].dtype == np.float64 and str(got["n_new_tokens"].dtype) == "Int64"
    got_d = reopened.read("decisions")
    assert _records(got_d, ["query_id", "arm", "propensity", "reward"]) == _records(pd.DataFrame(decisions, columns=["query_id", "arm", "propensity", "reward"]), ["query_id", "arm", "propensity", "reward"])
    if rows:  # plain pandas sees the same rows, without this package
        assert _records(pd.read_parquet(root / "outcomes"), cols) == _records(expected, cols)
    assert validate_log(root).ok, validate_log(root).problems


def test_append_empty_frame_writes_nothing(tmp_path, helpers):
    log = create_log(tmp_path / "log", helpers.make_metadata())
    assert log.append("outcomes", helpers.make_outcomes(0)) is None
    assert log.parts("outcomes") == [] and log.read("outcomes").empty
    assert list(log.read("outcomes").columns) == arrow_schema("outcomes").names


def test_create_log_exist_ok_reopens_equal_metadata(tmp_path, helpers):
    log = create_log(tmp_path / "log", helpers.make_metadata())
    log.append("outcomes", helpers.make_outcomes(2))
    again = create_log(tmp_path / "log", helpers.make_metadata(), exist_ok=True)
    assert again.n_rows("outcomes") == 2 * len(helpers.ARMS)


# ---------------------------------------------------------------------------------------------
# bad input: (what is done, exception, message pattern); the log on disk stays byte-for-byte


def _out(h, **changes):
    """Two new, valid outcomes queries (q10, q11) with ``changes``: column -> value for all rows,
    or column -> (row, value) for one row."""
    f = h.make_outcomes(2, start=10, seed=3)
    for col, v in changes.items():
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], int):
            f[col] = f[col].astype(object) if col in f else None
            f.loc[v[0], col] = v[1]
        else:
            f[col] = v
    return f


def _dec(h, start=4, n=2, **changes):
    """Valid decisions for q4, q5 (outcomes exist for them, decisions do not) with ``changes``."""
    f = h.make_decisions(n, start=start, seed=5)
    for col, v in changes.items():
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], int):
            f[col] = f[col].astype(object)
            f.loc[v[0], col] = v[1]
        else:
            f[col] = v
    return f


def _mixed_extra(h):
    f = _out(h, x_note="text")
    f["x_note"] = f["x_note"].astype(object)
    f.loc[0, "x_note"] = 3
    return f


def _dup_columns(h):
    f = _out(h)
    return pd.concat([f, f[["reward"]]], axis=1)


BAD_INPUTS = [
    ("missing reward", lambda log, h: log.append("outcomes", _out(h).drop(columns="reward")), LogValidationError, r"outcomes\.reward: missing required column \(expected double\)"),
    ("missing query_id", lambda log, h: log.append("outcomes", _out(h).drop(columns="query_id")), LogValidationError, r"outcomes\.query_id: missing required column"),
    ("NaN reward", lambda log, h: log.append("outcomes", _out(h, reward=(1, np.nan))), LogValidationError, r"outcomes\.reward: 1 row\(s\) are null or NaN.*\(first: row 1 query_id=q10\)"),
    ("infinite reward", lambda log, h: log.append("outcomes", _out(h, reward=(2, np.inf))), LogValidationError, r"outcomes\.reward: 1 row\(s\) are NaN or infinite"),
    ("reward as text", lambda log, h: log.append("outcomes", _out(h, reward="0.5")), LogValidationError, r"outcomes\.reward: expected double, found text"),
    ("reward as bool", lambda log, h: log.append("outcomes", _out(h, reward=True)), LogValidationError, r"outcomes\.reward: expected double, found boolean"),
    ("query_id as int", lambda log, h: log.append("outcomes", _out(h, query_id=7)), LogValidationError, r"outcomes\.query_id: expected string, found int64"),
    ("prompt as bytes", lambda log, h: log.append("outcomes", _out(h, prompt=b"raw")), LogValidationError, r"outcomes\.prompt: expected string, found bytes"),
    ("unknown arm", lambda log, h: log.append("outcomes", _out(h, arm=(0, "huge"))), LogValidationError, r"outcomes\.arm: 1 row\(s\) name arms the metadata does not list \(huge; listed: none, tiny, small\)"),
    ("null arm", lambda log, h: log.append("outcomes", _out(h, arm=(3, None))), LogValidationError, r"outcomes\.arm: 1 row\(s\) are null or NaN; the column is required \(first: row 3 query_id=q11\)"),
    ("duplicate key in the frame", lambda log, h: log.append("outcomes", pd.concat([_out(h), _out(h).iloc[:1]])), LogValidationError, r"outcomes\.query_id\+arm: 1 row\(s\) repeat a \(query_id, arm\) key"),
    ("key already in the log", lambda log, h: log.append("outcomes", h.make_outcomes(1, start=3)), LogValidationError, r"3 row\(s\) repeat a \(query_id, arm\) key already in the log \(first: row 0 query_id=q3"),
    ("undeclared column", lambda log, h: log.append("outcomes", _out(h).assign(rewrd=1.0)), LogValidationError, r"outcomes\.rewrd: undeclared column .*'x_'"),
    ("unknown split", lambda log, h: log.append("outcomes", _out(h, split="dev")), LogValidationError, r"outcomes\.split: 6 row\(s\) are not one of train, validation, test"),
    ("fractional token count", lambda log, h: log.append("outcomes", _out(h, n_new_tokens=1.5)), LogValidationError, r"outcomes\.n_new_tokens: expected int64, found double values that do not convert exactly"),
    ("lossless as text", lambda log, h: log.append("outcomes", _out(h, lossless="yes")), LogValidationError, r"outcomes\.lossless: expected bool, found text"),
    ("prompt differs within a query", lambda log, h: log.append("outcomes", _out(h, prompt=(1, "other"))), LogValidationError, r"outcomes\.prompt: 3 row\(s\) disagree with other rows of the same query_id"),
    ("prompt differs from the log", lambda log, h: log.append("decisions", _dec(h, prompt=(1, "changed"))), LogValidationError, r"decisions\.prompt: 1 row\(s\) disagree with outcomes rows of the same query_id \(first: row 1 query_id=q5\)"),
    ("domain differs from the log", lambda log, h: log.append("decisions", _dec(h, domain="elsewhere")), LogValidationError, r"decisions\.domain: 2 row\(s\) disagree with outcomes rows"),
    ("new part of an old query disagrees", lambda log, h: log.append("outcomes", h.make_outcomes(1, start=0, arms=("none",)).assign(query_id="q0", split="test")), LogValidationError, r"outcomes\.split: 1 row\(s\) disagree with (outcomes|decisions) rows"),
    ("propensity 0", lambda log, h: log.append("decisions", _dec(h, propensity=(0, 0.0))), LogValidationError, r"decisions\.propensity: 1 row\(s\) are outside \(0, 1\] \(first: row 0 query_id=q4\)"),
    ("propensity above 1", lambda log, h: log.append("decisions", _dec(h, propensity=1.5)), LogValidationError, r"decisions\.propensity: 2 row\(s\) are outside \(0, 1\]"),
    ("propensity NaN", lambda log, h: log.append("decisions", _dec(h, propensity=(1, np.nan))), LogValidationError, r"decisions\.propensity: 1 row\(s\) are null or NaN"),
    ("missing policy_id", lambda log, h: log.append("decisions", _dec(h).drop(columns="policy_id")), LogValidationError, r"decisions\.policy_id: missing required column"),
    ("decision already in the log", lambda log, h: log.append("decisions", _dec(h, start=0, n=1)), LogValidationError, r"decisions\.query_id\+policy_id: 1 row\(s\) repeat a \(query_id, policy_id\) key already in the log"),
    ("timestamp as text", lambda log, h: log.append("decisions", _dec(h, decided_at="2024-01-01")), LogValidationError, r"decisions\.decided_at: expected timestamp\[us, tz=UTC\], found text"),
    ("extra with mixed values", lambda log, h: log.append("outcomes", _mixed_extra(h)), LogValidationError, r"outcomes\.x_note: extra column values .* have no single Arrow type"),
    ("extra changes type", lambda log, h: log.append("outcomes", _out(h, x_note=5)), LogValidationError, r"outcomes\.x_note: extra column has type string in earlier parts \(first: part-.*\); found int64"),
    ("repeated column name", lambda log, h: log.append("outcomes", _dup_columns(h)), LogValidationError, r"outcomes\.reward: column name\(s\) appear more than once: reward"),
    ("non-string column name", lambda log, h: log.append("outcomes", _out(h).rename(columns={"domain": 3})), LogValidationError, r"outcomes\.3: column names must be strings"),
    ("not a DataFrame", lambda log, h: log.append("outcomes", _out(h).to_dict("records")), LogValidationError, r"expected a pandas DataFrame, found list"),
    ("unknown table", lambda log, h: log.append("outcome", _out(h)), LogError, r"table must be one of outcomes, decisions; got 'outcome'"),
    ("every problem at once", lambda log, h: log.append("outcomes", _out(h, reward=(0, np.nan), arm=(1, "huge"), split=(2, "dev"))), LogValidationError, r"4 problem\(s\): outcomes\.reward: .*; outcomes\.arm: .*; outcomes\.split: .*; outcomes\.split: 3 row\(s\) disagree"),
    ("create over a log", lambda log, h: create_log(log.root, h.make_metadata()), LogError, r"a log already exists here"),
    ("create with other metadata", lambda log, h: create_log(log.root, h.make_metadata(alpha=0.3), exist_ok=True), LogError, r"metadata differs from the requested one"),
    ("create inside a non-empty folder", lambda log, h: create_log(log.root / "outcomes", h.make_metadata()), LogError,
     r"a directory that is not empty and is not a log \(it holds part-"),
]


@pytest.fixture
def log_with_extra(filled_log, helpers):
    """``filled_log`` plus an outcomes part carrying a string extra ``x_note`` (q6)."""
    filled_log.append("outcomes", helpers.make_outcomes(1, start=6, seed=2).assign(x_note="hello"))
    return filled_log


@pytest.mark.parametrize("name, action, exc, pattern", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_and_leaves_the_log_intact(log_with_extra, helpers, name, action, exc, pattern):
    before = helpers.hash_tree(log_with_extra.root)
    rows_before = log_with_extra.read("outcomes")
    with pytest.raises(exc, match=pattern):
        action(log_with_extra, helpers)
    assert helpers.hash_tree(log_with_extra.root) == before
    assert validate_log(log_with_extra.root).ok
    pd.testing.assert_frame_equal(open_log(log_with_extra.root).read("outcomes"), rows_before)


def test_bad_input_table_is_large_enough():
    assert len(BAD_INPUTS) >= 20
    assert len({c[0] for c in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize(
    "setup, pattern",
    [
        (lambda p: None, r"no such log directory"),
        (lambda p: p.write_text("x"), r"expected a log directory, found a file"),
        (lambda p: p.mkdir(), r"not a log \(no _log.json\)"),
        (lambda p: (p.mkdir(), (p / "_log.json").write_text("{not json")), r"_log.json: unreadable log metadata"),
        (lambda p: (p.mkdir(), (p / "_log.json").write_text('{"arms": []}')), r"log metadata is missing 'schema_version'"),
        (lambda p: (p.mkdir(), (p / "_log.json").write_text('{"schema_version": "9.0", "arms": [{"name": "a"}], "reward": {}}')), r"schema_version '9.0' is not readable"),
    ],
    ids=["missing", "file", "no-metadata", "bad-json", "missing-key", "newer-major"],
)
def test_open_log_refuses_what_is_not_a_log(tmp_path, setup, pattern):
    path = tmp_path / "log"
    setup(path)
    with pytest.raises(LogError, match=pattern):
        open_log(path)


# ---------------------------------------------------------------------------------------------
# crash safety: kill -9 in the middle of appends

_APPENDER = textwrap.dedent(
    """
    import os, sys
    import numpy as np, pandas as pd
    from logging_data import open_log
    root, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log = open_log(root)
    rng = np.random.default_rng(0)
    base = pd.DataFrame({"prompt": [os.urandom(150).hex() for _ in range(n)], "arm": "a",
                         "reward": rng.uniform(size=n), "arm_output": [os.urandom(100).hex() for _ in range(n)]})
    k = 0
    while True:
        log.append("outcomes", base.assign(query_id=[f"{prefix}-{k}-{i}" for i in range(n)]))
        k += 1
    """
)


def _kill_mid_write(root, prefix: str, n: int, timeout_s: float = 30.0) -> bool:
    """Start an appender; SIGKILL it while a temporary part is on disk (after at least one
    committed part of its own). True when a temporary file was seen right before the kill."""
    table = root / "outcomes"
    n_before = len(list(table.glob("part-*.parquet"))) if table.exists() else 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", _APPENDER, str(root), prefix, str(n)], env=env, stderr=subprocess.PIPE)
    caught = False
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if table.exists() and len(list(table.glob("part-*.parquet"))) > n_before and any(table.glob(".part-*")):
                caught = True
                break
            time.sleep(0.0005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    return caught


def test_append_killed_mid_write_leaves_a_valid_log_with_whole_parts(tmp_path):
    import duckdb

    root = tmp_path / "log"
    log = create_log(root, LogMetadata(arms=(Arm("a", "draft", 0.1),)))
    n = 20_000
    caught = False
    for attempt in range(4):  # each attempt is a fresh appender on the same log, killed once
        caught = _kill_mid_write(root, f"run{attempt}", n)
        if caught:
            break
    assert caught, "never caught an append mid-write; the test did not exercise a kill during a write"
    assert log.stale_temporaries(), "a kill mid-write should leave its hidden temporary behind"

    report = validate_log(root)
    assert report.ok, report.problems
    assert any("temporary file(s) from interrupted appends" in note for note in report.notes)
    n_rows = log.n_rows("outcomes")
    assert n_rows > 0 and n_rows % n == 0
    assert len(pd.read_parquet(root / "outcomes")) == n_rows
    assert ds.dataset(root / "outcomes").count_rows() == n_rows
    assert duckdb.sql(f"select count(*) from read_parquet('{root}/outcomes/*.parquet')").fetchall()[0][0] == n_rows
    per_batch = log.read("outcomes", ["query_id"])["query_id"].str.rsplit("-", n=1).str[0].value_counts()
    assert (per_batch == n).all()
    assert log.remove_stale_temporaries() >= 1 and not log.stale_temporaries()
    assert validate_log(root).notes == []


def test_truncated_temporary_is_invisible_to_readers(filled_log):
    """What a crash mid-write leaves (half a Parquet file under a hidden name) is ignored by all."""
    import duckdb

    part = filled_log.parts("outcomes")[0]
    tmp = part.parent / f".{part.name}.tmp"
    tmp.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    n = filled_log.n_rows("outcomes")
    assert len(pd.read_parquet(filled_log.root / "outcomes")) == n
    assert ds.dataset(filled_log.root / "outcomes").count_rows() == n
    assert duckdb.sql(f"select count(*) from read_parquet('{filled_log.root}/outcomes/*.parquet')").fetchall()[0][0] == n
    assert validate_log(filled_log.root).ok
    assert filled_log.stale_temporaries() == [tmp]


# ---------------------------------------------------------------------------------------------
# plain readers


def test_plain_pandas_pyarrow_and_duckdb_read_the_same_rows(filled_log):
    import duckdb

    root = filled_log.root
    for table in ("outcomes", "decisions"):
        ours = filled_log.read(table)
        declared = [f.name for f in pq.read_schema(filled_log.parts(table)[0]) if not f.name.startswith("x_")]
        plain = pd.read_parquet(root / table)
        arrow = ds.dataset(root / table).to_table().to_pandas()
        duck = duckdb.sql(f"select * from read_parquet('{root}/{table}/*.parquet')").to_arrow_table().to_pandas()
        assert len(ours) == len(plain) == len(arrow) == len(duck) > 0
        for other in (plain, arrow, duck):
            assert list(other.columns[: len(declared)]) == declared
            assert _records(other, declared) == _records(ours, declared)
    # the footer says what the part is, on its own
    meta = pq.read_schema(filled_log.parts("decisions")[0]).metadata
    assert LogMetadata.loads(meta[b"draftpick"]) == filled_log.metadata
    assert meta[b"draftpick_table"] == b"decisions"


def test_extras_added_later_are_seen_by_log_read_and_unifying_readers(filled_log, helpers):
    import duckdb

    filled_log.append("outcomes", helpers.make_outcomes(1, start=6).assign(x_note=["a", "b", "c"]))
    ours = filled_log.read("outcomes")
    assert ours["x_note"].notna().sum() == 3 and ours["x_note"].isna().sum() == len(ours) - 3
    picked = filled_log.read("outcomes", ["query_id", "x_note"])
    assert list(picked.columns) == ["query_id", "x_note"] and picked["x_note"].notna().sum() == 3
    with pytest.raises(LogError, match=r"no column 'x_nope'; the table has query_id, prompt"):
        filled_log.read("outcomes", ["x_nope"])
    duck = duckdb.sql(f"select * from read_parquet('{filled_log.root}/outcomes/*.parquet', union_by_name=true)").to_arrow_table().to_pandas()
    assert sorted(duck["x_note"].dropna()) == ["a", "b", "c"]
    assert validate_log(filled_log.root).ok
