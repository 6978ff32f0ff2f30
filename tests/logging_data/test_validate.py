"""validate_log on logs broken behind the library's back: every problem reported, at once,
with its first offending rows; nothing raises for a bad log."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logging_data import LogMetadata, check_frame, to_arrow, validate_log
from logging_data.io import METADATA_KEY, TABLE_KEY


def _write_part(log, table: str, arrow: pa.Table, name: str = "part-99999999999999999999-hand.parquet", metadata: LogMetadata | None = None, footer_table: str | None = None, footer: bool = True) -> None:
    """Write ``arrow`` as a part of ``table`` directly, bypassing every check of ``append``."""
    if footer:
        meta = metadata or log.metadata
        arrow = arrow.replace_schema_metadata({METADATA_KEY: meta.dumps().encode(), TABLE_KEY: (footer_table or table).encode()})
    d = log.table_dir(table)
    d.mkdir(exist_ok=True)
    pq.write_table(arrow, d / name)


def _set(arrow: pa.Table, name: str, values, type_=None) -> pa.Table:
    arr = pa.array(values, type=type_ or arrow.schema.field(name).type, from_pandas=False)
    return arrow.set_column(arrow.schema.get_field_index(name), pa.field(name, arr.type), arr)


def _new_outcomes(helpers, start=20, n=2):
    return to_arrow("outcomes", helpers.make_outcomes(n, start=start, seed=9))


def _bad_values(log, h):
    t = _new_outcomes(h)  # q20, q21: 6 rows
    t = _set(t, "reward", [np.nan, 0.1, 0.2, np.inf, 0.3, 0.4])
    t = _set(t, "arm", ["none", "huge", "small", "none", "tiny", "huge"])
    t = _set(t, "split", ["dev"] * 3 + ["train"] * 3)
    _write_part(log, "outcomes", t)


def _bad_decisions(log, h):
    t = to_arrow("decisions", h.make_decisions(3, start=4))
    t = _set(t, "propensity", [0.0, 0.5, 1.0000001])
    _write_part(log, "decisions", t)


def _copied_part(log, h):
    src = log.parts("outcomes")[0]
    shutil.copy(src, src.with_name("part-99999999999999999999-copy.parquet"))


def _cross_table(log, h):
    t = to_arrow("decisions", h.make_decisions(1, start=5))
    _write_part(log, "decisions", _set(t, "prompt", ["not the outcomes prompt"]))


def _extra_conflict(log, h):
    _write_part(log, "outcomes", _new_outcomes(h, 30, 1).append_column("x_n", pa.array([1, 2, 3])), name="part-99999999999999999998-a.parquet")
    _write_part(log, "outcomes", _new_outcomes(h, 31, 1).append_column("x_n", pa.array(["a", "b", "c"])), name="part-99999999999999999999-b.parquet")


BROKEN = [
    ("values", _bad_values, [
        r"outcomes\.reward: 1 row\(s\) are null or NaN; the column is required \(first: row 18 query_id=q20\)",
        r"outcomes\.reward: 1 row\(s\) are NaN or infinite; must be finite \(first: row 21 query_id=q21\)",
        r"outcomes\.arm: 2 row\(s\) name arms the metadata does not list \(huge; listed: none, tiny, small\) \(first: row 19 query_id=q20, row 23 query_id=q21\)",
        r"outcomes\.split: 3 row\(s\) are not one of train, validation, test",
    ]),
    ("propensities", _bad_decisions, [r"decisions\.propensity: 2 row\(s\) are outside \(0, 1\] \(first: row 4 query_id=q4, row 6 query_id=q6\)"]),
    ("duplicate part", _copied_part, [r"outcomes\.query_id\+arm: 12 row\(s\) repeat a \(query_id, arm\) key already present \(first: row 18 query_id=q0"]),
    ("cross-table", _cross_table, [r"decisions\.prompt: 1 row\(s\) disagree with outcomes rows of the same query_id \(first: row 4 query_id=q5\)"]),
    ("no footer", lambda log, h: _write_part(log, "outcomes", _new_outcomes(h), footer=False), [r"outcomes: part-.*-hand\.parquet: footer carries no draftpick metadata"]),
    ("other footer", lambda log, h: _write_part(log, "outcomes", _new_outcomes(h), metadata=h.make_metadata(alpha=0.9)), [r"footer metadata differs from _log\.json"]),
    ("wrong table", lambda log, h: _write_part(log, "outcomes", _new_outcomes(h), footer_table="decisions"), [r"footer says it is a part of 'decisions', found in outcomes/"]),
    ("mistyped", lambda log, h: _write_part(log, "outcomes", _set(_new_outcomes(h), "reward", ["1"] * 6, pa.string())), [r"outcomes\.reward: part-.*: expected type double, found string"]),
    ("missing column", lambda log, h: _write_part(log, "outcomes", _new_outcomes(h).drop_columns(["prompt"])), [r"outcomes\.prompt: part-.*: missing column \(expected string\)", r"outcomes\.prompt: 6 row\(s\) are null"]),
    ("undeclared column", lambda log, h: _write_part(log, "outcomes", _new_outcomes(h).append_column("rewrd", pa.array([1.0] * 6))), [r"outcomes\.rewrd: part-.*: undeclared column"]),
    ("stray file", lambda log, h: (log.root / "outcomes" / "notes.csv").write_text("a,b\n"), [r"outcomes: notes\.csv: not a part of this log .* visible to pandas, pyarrow and DuckDB"]),
    ("stray folder", lambda log, h: (log.root / "decisions" / "year=2024").mkdir(), [r"decisions: year=2024: not a part of this log"]),
    ("corrupt part", lambda log, h: (log.root / "outcomes" / "part-99999999999999999999-junk.parquet").write_bytes(b"PAR1 not really"), [r"outcomes: part-.*-junk\.parquet: unreadable Parquet"]),
    ("extras conflict", _extra_conflict, [r"outcomes: parts have columns of conflicting types"]),
]


@pytest.mark.parametrize("name, break_it, patterns", BROKEN, ids=[b[0] for b in BROKEN])
def test_validate_reports_each_broken_invariant(filled_log, helpers, name, break_it, patterns):
    assert validate_log(filled_log.root).ok
    break_it(filled_log, helpers)
    report = validate_log(filled_log.root)
    assert not report.ok
    messages = [str(p) for p in report.problems]
    for pattern in patterns:
        assert any(pd.Series(messages).str.contains(pattern, regex=True)), f"{pattern!r} not in {messages}"
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["ok"] is False and len(doc["problems"]) == len(report.problems)


def test_validate_reports_all_problems_of_a_log_at_once(filled_log, helpers):
    _bad_values(filled_log, helpers)
    _bad_decisions(filled_log, helpers)
    (filled_log.root / "outcomes" / "notes.csv").write_text("x")
    tables = {p.table for p in validate_log(filled_log.root).problems}
    columns = {p.column for p in validate_log(filled_log.root).problems}
    assert tables == {"outcomes", "decisions"}
    assert {"reward", "arm", "split", "propensity", ""} <= columns


def test_validate_counts_rows_and_parts(filled_log):
    report = validate_log(filled_log.root)
    assert report.ok and report.notes == []
    assert report.n_rows == {"outcomes": 18, "decisions": 4}
    assert report.n_parts == {"outcomes": 2, "decisions": 1}


def test_validate_does_not_raise_for_what_is_not_a_log(tmp_path):
    report = validate_log(tmp_path / "nothing")
    assert not report.ok and "no such log directory" in str(report.problems[0])


def test_dictionary_encoded_and_large_strings_are_accepted(filled_log, helpers):
    """Other writers (pandas categories, large strings) produce valid parts too."""
    frame = helpers.make_outcomes(2, start=40)
    frame["arm"] = frame["arm"].astype("category")
    frame["prompt"] = frame["prompt"].astype("str")
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    assert pa.types.is_dictionary(arrow.schema.field("arm").type)
    declared = to_arrow("outcomes", frame)
    for name in declared.column_names:
        if name not in arrow.column_names:
            arrow = arrow.append_column(declared.schema.field(name), declared.column(name))
    arrow = arrow.select(declared.column_names)
    arrow = arrow.set_column(arrow.schema.get_field_index("n_new_tokens"), declared.schema.field("n_new_tokens"), declared.column("n_new_tokens"))
    arrow = arrow.set_column(arrow.schema.get_field_index("lossless"), declared.schema.field("lossless"), declared.column("lossless"))
    _write_part(filled_log, "outcomes", arrow)
    report = validate_log(filled_log.root)
    assert report.ok, report.problems


def test_stale_temporary_is_a_note_not_a_problem(filled_log):
    (filled_log.root / "outcomes" / ".part-1.parquet.tmp").write_bytes(b"half")
    report = validate_log(filled_log.root)
    assert report.ok
    assert report.notes and "1 temporary file(s) from interrupted appends" in report.notes[0]


@pytest.mark.parametrize(
    "column, values, pattern",
    [
        ("reward", [0.1, np.nan, 0.3], r"1 row\(s\) are null or NaN.*\(first: row 1 query_id=b\)"),
        ("reward", [np.inf, -np.inf, 0.3], r"2 row\(s\) are NaN or infinite.*\(first: row 0 query_id=a, row 1 query_id=b\)"),
        ("arm", ["none", "x", "y"], r"2 row\(s\) name arms the metadata does not list \(x, y;"),
        ("split", ["train", "dev", None], r"1 row\(s\) are not one of train, validation, test"),
        ("query_id", ["a", "a", "c"], r"1 row\(s\) repeat a \(query_id, arm\) key"),
    ],
)
def test_check_frame_counts_and_names_first_rows(helpers, column, values, pattern):
    frame = pd.DataFrame({"query_id": ["a", "b", "c"], "prompt": ["p", "p", "p"], "split": ["train", "train", "train"], "arm": ["none"] * 3, "reward": [0.0] * 3})
    frame[column] = values
    problems = check_frame("outcomes", frame, helpers.make_metadata())
    assert len(problems) == 1 and problems[0].column in (column, "query_id+arm")
    assert pd.Series([str(problems[0])]).str.contains(pattern).all(), str(problems[0])


def test_query_agreement_treats_every_null_alike():
    """pd.NA (pandas "string"), None and NaN all mean "unknown" and agree with each other."""
    from logging_data import check_query_agreement

    new = pd.DataFrame({"query_id": ["a", "b", "c", "d"], "prompt": ["p", "p", "p", "p"],
                        "domain": pd.array(["code", pd.NA, pd.NA, "math"], dtype="string")})
    ref = pd.DataFrame({"query_id": ["a", "b", "c", "d", "a"], "prompt": ["p", "p", "q", "p", "x"], "domain": ["code", None, np.nan, None, "y"]})
    problems = check_query_agreement("decisions", new, ref, "outcomes")
    assert [str(p) for p in problems] == [
        "decisions.prompt: 1 row(s) disagree with outcomes rows of the same query_id (first: row 2 query_id=c)",
        "decisions.domain: 1 row(s) disagree with outcomes rows of the same query_id (first: row 3 query_id=d)",
    ]


@pytest.mark.parametrize("kind, metric, rewards, n_bad, pattern", [
    ("speedup_count", "", [1.2, -5.0, -1.0], 2, r"2 row\(s\) are outside the range of a speedup_count reward \(a speed-up, > 0\).*row 1 query_id=b"),
    ("speedup_wall", "", [0.0, 1.0, 2.0], 1, r"speedup_wall reward \(a speed-up, > 0\).*row 0 query_id=a"),
    ("speedup_count", "time_saved", [0.5, 1.0, -3.0], 1, r"time-saved reward \(1 - 1/speed-up, < 1\).*row 1 query_id=b"),
    ("speedup_count", "time_saved", [0.5, 0.0, -3.0], 0, None),
    ("alignment", "align_accept", [5.0, -5.0, 0.0], 0, None),
])
def test_speedup_rewards_have_a_range(kind, metric, rewards, n_bad, pattern):
    from logging_data import Arm, RewardDefinition

    meta = LogMetadata(arms=(Arm("none", "none"),), reward=RewardDefinition(kind=kind, metric=metric))
    frame = pd.DataFrame({"query_id": ["a", "b", "c"], "prompt": ["p"] * 3, "arm": ["none"] * 3, "reward": rewards})
    problems = check_frame("outcomes", frame, meta)
    assert len(problems) == (1 if n_bad else 0)
    if n_bad:
        assert pd.Series([str(problems[0])]).str.contains(pattern).all(), str(problems[0])
