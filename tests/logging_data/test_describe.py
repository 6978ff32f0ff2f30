"""describe_log: the numbers a person checks before training, against hand and pandas values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from logging_data import Arm, LogMetadata, RewardDefinition, create_log, to_arrow
from logging_data.describe import describe_log, reward_stats
from logging_data.io import METADATA_KEY, TABLE_KEY


def _by(entries, key):
    return {e[key]: e for e in entries}


def test_describe_small_log_by_hand(tmp_path):
    meta = LogMetadata(arms=(Arm("none", "none"), Arm("d1", "draft", 0.1), Arm("d2", "draft", 0.3)), reward=RewardDefinition(alpha=0.5))
    log = create_log(tmp_path / "log", meta)
    log.append("outcomes", pd.DataFrame({
        "query_id": ["q1", "q1", "q2", "q2", "q3", "q3"],
        "prompt": ["a", "a", "b", "b", "c", "c"],
        "domain": ["code", "code", None, None, "code", "code"],
        "split": ["train", "train", None, None, "test", "test"],
        "arm": ["none", "d1", "none", "d1", "none", "d1"],
        "reward": [0.0, 0.5, 0.0, 0.25, 0.0, 1.0],
    }))
    log.append("decisions", pd.DataFrame({
        "query_id": ["q1", "q2", "q1"], "prompt": ["a", "b", "a"], "domain": ["code", None, "code"], "split": ["train", None, "train"],
        "arm": ["d1", "none", "none"], "propensity": [0.5, 0.25, 1.0], "reward": [0.5, 0.0, 0.0], "policy_id": ["uniform", "uniform", "fixed"],
    }))
    s = describe_log(tmp_path / "log")
    assert json.loads(json.dumps(s, allow_nan=False)) == s  # JSON-ready as it is
    assert s["rows"] == {"outcomes": 6, "decisions": 3} and s["parts"] == {"outcomes": 1, "decisions": 1}
    assert [(a["index"], a["name"], a["kind"], a["cost"]) for a in s["arms"]] == [(0, "none", "none", 0.0), (1, "d1", "draft", 0.1), (2, "d2", "draft", 0.3)]
    assert s["reward_definition"] == {"kind": "alignment", "metric": "align_accept", "alpha": 0.5, "description": ""}

    o = s["outcomes"]
    assert o["n_rows"] == 6 and o["n_queries"] == 3
    by_arm = _by(o["reward_by_arm"], "arm")
    assert [e["arm"] for e in o["reward_by_arm"]] == ["none", "d1", "d2"]
    assert by_arm["d1"] == {"arm": "d1", "count": 3, "mean": pytest.approx(0.5833333333), "std": pytest.approx(np.std([0.5, 0.25, 1.0], ddof=1)), "min": 0.25, "max": 1.0}
    assert by_arm["none"]["std"] == 0.0
    assert by_arm["d2"] == {"arm": "d2", "count": 0, "mean": None, "std": None, "min": None, "max": None}
    by_domain = _by(o["reward_by_domain"], "domain")
    assert [e["domain"] for e in o["reward_by_domain"]] == ["code", None]
    assert by_domain["code"]["count"] == 4 and by_domain["code"]["mean"] == pytest.approx(0.375)
    assert by_domain[None]["count"] == 2 and by_domain[None]["max"] == 0.25
    assert o["queries_by_split"] == {"train": 1, "validation": 0, "test": 1, "none": 1}

    d = s["decisions"]
    assert d["propensity"] == {"min": 0.25, "max": 1.0}
    assert d["policies"] == [
        {"policy_id": "fixed", "count": 1, "propensity_min": 1.0, "propensity_max": 1.0, "reward_mean": 0.0},
        {"policy_id": "uniform", "count": 2, "propensity_min": 0.25, "propensity_max": 0.5, "reward_mean": 0.25},
    ]
    assert d["n_queries"] == 2 and d["queries_by_split"]["train"] == 1


def test_describe_agrees_with_pandas_on_random_logs(tmp_path, helpers):
    log = create_log(tmp_path / "log", helpers.make_metadata())
    for k in range(3):
        log.append("outcomes", helpers.make_outcomes(7, start=7 * k, seed=k))
    frame = log.read("outcomes")
    s = describe_log(log.root)["outcomes"]
    expected = frame.groupby("arm")["reward"].agg(["count", "mean", "std", "min", "max"])
    for entry in s["reward_by_arm"]:
        row = expected.loc[entry["arm"]]
        for stat in ("count", "mean", "std", "min", "max"):
            assert entry[stat] == pytest.approx(row[stat], rel=1e-12, abs=1e-15)
    expected_dom = frame.groupby(frame["domain"].astype(object).fillna("<none>"))["reward"].agg(["count", "mean"])
    for entry in s["reward_by_domain"]:
        row = expected_dom.loc[entry["domain"] if entry["domain"] is not None else "<none>"]
        assert entry["count"] == row["count"] and entry["mean"] == pytest.approx(row["mean"])
    assert sum(s["queries_by_split"].values()) == frame["query_id"].nunique() == s["n_queries"] == 21


def test_describe_empty_log_and_unknown_arms(tmp_path, helpers):
    log = create_log(tmp_path / "log", helpers.make_metadata())
    s = describe_log(log.root)
    assert s["rows"] == {"outcomes": 0, "decisions": 0} and "outcomes" not in s and "decisions" not in s
    # a part written behind the library's back with an arm the metadata does not list
    t = to_arrow("outcomes", helpers.make_outcomes(1, arms=("none", "rogue")))
    t = t.replace_schema_metadata({METADATA_KEY: log.metadata.dumps().encode(), TABLE_KEY: b"outcomes"})
    (log.root / "outcomes").mkdir()
    pq.write_table(t, log.root / "outcomes" / "part-0-hand.parquet")
    arms = [e["arm"] for e in describe_log(log.root)["outcomes"]["reward_by_arm"]]
    assert arms == ["none", "tiny", "small", "rogue"]


@pytest.mark.parametrize(
    "values, expected",
    [
        ([], {"count": 0, "mean": None, "std": None, "min": None, "max": None}),
        ([2.0], {"count": 1, "mean": 2.0, "std": None, "min": 2.0, "max": 2.0}),
        ([1.0, 3.0, np.nan], {"count": 2, "mean": 2.0, "std": pytest.approx(2**0.5), "min": 1.0, "max": 3.0}),
    ],
)
def test_reward_stats(values, expected):
    assert reward_stats(np.array(values, dtype=np.float64)) == expected
