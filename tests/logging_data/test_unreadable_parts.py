"""A part changed outside draftpick: every reader names the file and says what to do."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bandit.testing import write_simulated_log
from logging_data import LogError, open_log


def test_a_truncated_part_is_named(tmp_path):
    log = write_simulated_log(tmp_path / "log", n_prompts=10)
    part = log.parts("outcomes")[0]
    part.write_bytes(part.read_bytes()[:100])
    for read in (lambda: log.read("outcomes"), lambda: log.read("outcomes", ["query_id"]), lambda: log.n_rows("outcomes"),
                 lambda: log.keys("outcomes")):
        with pytest.raises(LogError, match=rf"{part.name}: not a readable Parquet part .*move it out of the log"):
            read()


def test_parts_with_clashing_types_are_named(tmp_path):
    log = write_simulated_log(tmp_path / "log", n_prompts=10, decisions=False)
    first = log.parts("outcomes")[0]
    t = pq.read_table(first)
    i = t.schema.get_field_index("reward")
    clash = t.slice(0, 3).set_column(i, pa.field("reward", pa.string()), pa.array(["x", "y", "z"]))
    other = first.with_name("part-99999999999999999999-deadbeef.parquet")
    pq.write_table(clash.replace_schema_metadata(t.schema.metadata), other)
    with pytest.raises(LogError, match=rf"column 'reward' is double in {first.name} but string in {other.name}"):
        open_log(tmp_path / "log").read("outcomes")
