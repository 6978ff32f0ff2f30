"""A log is read at scale by query engines as it is, without draftpick: DuckDB and Polars (lazy,
with the filter pushed into the Parquet scan) give the same answers as ``Log.read``, across parts
whose extra columns differ."""

from __future__ import annotations

import pandas as pd
import pytest

from bandit.testing import simulated_outcomes, write_simulated_log
from logging_data import open_log


@pytest.fixture
def log(tmp_path):
    log = write_simulated_log(tmp_path / "log", n_prompts=120, decisions=True)
    more = simulated_outcomes(40, 3, 3, seed=5).assign(query_id=lambda f: "extra-" + f["query_id"].astype(str),
                                                         x_source="more")  # a second part with an extra column
    log.append("outcomes", more)
    return open_log(tmp_path / "log")


def _expected(log) -> pd.DataFrame:
    frame = log.read("outcomes")
    test = frame[frame["split"].astype(str) == "test"]
    return test.groupby("arm", observed=True)["reward"].agg(["count", "mean"]).sort_index()


def test_duckdb_reads_the_outcomes_table(log):
    duckdb = pytest.importorskip("duckdb")
    glob = str(log.root / "outcomes" / "*.parquet")
    got = duckdb.sql(f"SELECT arm, count(*) AS count, avg(reward) AS mean FROM read_parquet('{glob}', union_by_name=true) "
                     f"WHERE split = 'test' GROUP BY arm ORDER BY arm").df().set_index("arm")
    want = _expected(log)
    assert list(got.index) == [str(a) for a in want.index]
    assert got["count"].tolist() == want["count"].tolist()
    assert got["mean"].to_numpy() == pytest.approx(want["mean"].to_numpy())
    n_extra = duckdb.sql(f"SELECT count(x_source) FROM read_parquet('{glob}', union_by_name=true)").fetchall()[0][0]
    assert n_extra == 40 * 3
    # the decisions table is a separate table: never mixed into the outcomes
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{log.root / 'decisions' / '*.parquet'}')").fetchall()[0][0]
    assert n == log.n_rows("decisions")


def test_polars_scans_lazily_with_the_filter_pushed_down(log):
    pl = pytest.importorskip("polars")
    scan = pl.scan_parquet(str(log.root / "outcomes" / "*.parquet"), missing_columns="insert", extra_columns="ignore")
    query = scan.filter(pl.col("split") == "test").group_by("arm").agg(pl.len().alias("count"), pl.col("reward").mean().alias("mean"))
    plan = query.explain()
    scan_part = plan[plan.index("Parquet SCAN"):] if "Parquet SCAN" in plan else plan
    assert "SELECTION" in scan_part and "test" in scan_part, plan  # the predicate is inside the scan, not after it
    got = query.sort("arm").collect().to_pandas().set_index("arm")
    want = _expected(log)
    assert got["count"].tolist() == want["count"].tolist()
    assert got["mean"].to_numpy() == pytest.approx(want["mean"].to_numpy())


def test_reading_the_log_root_fails_naming_the_signpost_instead_of_mixing_tables(log):
    from logging_data.io import SIGNPOST_FILE

    with pytest.raises(Exception, match=SIGNPOST_FILE.replace(".", r"\.")):
        pd.read_parquet(log.root)
    text = (log.root / SIGNPOST_FILE).read_text()
    assert "LOG/outcomes" in text and "LOG/decisions" in text
    assert len(pd.read_parquet(log.root / "outcomes")) == log.n_rows("outcomes")


def test_a_writer_puts_the_signpost_into_a_log_made_before_it(log):
    from logging_data.io import SIGNPOST_FILE

    (log.root / SIGNPOST_FILE).unlink()
    with log.writer("test"):
        pass
    assert (log.root / SIGNPOST_FILE).exists()
