"""The declared contract: columns, arms, reward definitions and metadata, and their refusals."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logging_data.schema as schema
from logging_data import Arm, LogMetadata, RewardDefinition, arrow_schema, columns


def test_declared_tables_have_their_keys_required_and_documented():
    for table in schema.TABLES:
        cols = columns(table)
        names = [c.name for c in cols]
        assert len(names) == len(set(names))
        assert names[:4] == ["query_id", "prompt", "domain", "split"]
        by_name = {c.name: c for c in cols}
        for key in schema.KEYS[table] + ("arm", "reward"):
            assert not by_name[key].nullable
        assert all(c.doc.strip() for c in cols)
        assert not any(n.startswith(schema.EXTRA_PREFIX) for n in names)
        assert arrow_schema(table).names == names
    assert arrow_schema("decisions").field("propensity").type == pa.float64()
    assert arrow_schema("decisions").field("decided_at").type == pa.timestamp("us", tz="UTC")


def test_docstring_names_every_invariant_checked():
    doc = schema.__doc__
    for phrase in ["(0, 1]", "(query_id, arm)", "(query_id, policy_id)", "finite", "x_", "_log.json", "part-*.parquet"]:
        assert phrase in doc


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: columns("outcome"), r"table must be one of outcomes, decisions; got 'outcome'"),
        (lambda: Arm(""), r"arm name must be a non-empty string; got ''"),
        (lambda: Arm("  "), r"arm name must be a non-empty string"),
        (lambda: Arm(3), r"arm name must be a non-empty string; got 3"),
        (lambda: Arm("a", kind="big"), rf"arm 'a': kind must be one of {', '.join(schema.ARM_KINDS)}; got 'big'"),
        (lambda: Arm("a", cost=-1.0), r"arm 'a': cost must be a finite number >= 0; got -1.0"),
        (lambda: Arm("a", cost=math.nan), r"arm 'a': cost must be a finite number >= 0; got nan"),
        (lambda: Arm("a", cost="1"), r"cost must be a finite number >= 0; got '1'"),
        (lambda: Arm("a", attrs={"layers": [1, 2]}), r"arm 'a': attribute 'layers' must be str, int, float or bool; got list"),
        (lambda: RewardDefinition(kind="speed"), r"reward kind must be one of alignment, speedup_wall, speedup_count, custom; got 'speed'"),
        (lambda: RewardDefinition(metric="bleu"), r"alignment reward metric must be one of align_prefix, align_position, align_lcs, align_accept; got 'bleu'"),
        (lambda: RewardDefinition(alpha=-0.5), r"reward alpha must be a finite number >= 0; got -0.5"),
        (lambda: RewardDefinition(alpha=math.inf), r"reward alpha must be a finite number >= 0; got inf"),
        (lambda: LogMetadata(arms=()), r"a log needs at least one arm"),
        (lambda: LogMetadata(arms=(Arm("a"), Arm("b"), Arm("a"))), r"arm names must be unique; repeated: a"),
        (lambda: LogMetadata(arms=(Arm("a"),), schema_version="2.0"), r"schema_version '2.0' is not readable by this version of the package \(reads 1.x\)"),
        (lambda: LogMetadata.from_json({"arms": [{"name": "a"}], "reward": {}}), r"log metadata is missing 'schema_version'"),
        (lambda: LogMetadata.loads('{"schema_version": "1.0", "arms": [{"kind": "draft"}], "reward": {}}'), r"an arm entry must be an object with a 'name'; got \{'kind': 'draft'\}"),
    ],
)
def test_bad_declarations_are_refused(make, pattern):
    with pytest.raises((ValueError, KeyError), match=pattern):
        make()


def test_arm_index_is_the_position_and_unknown_arm_is_named():
    meta = LogMetadata(arms=(Arm("none", "none"), Arm("d", "draft", 0.2)))
    assert meta.arm_index("d") == 1 and meta.n_arms == 2 and meta.arm_names == ("none", "d")
    with pytest.raises(KeyError, match=r"unknown arm 'x'; the log's arms are none, d"):
        meta.arm_index("x")


def test_minor_version_differences_are_readable():
    assert LogMetadata(arms=(Arm("a"),), schema_version="1.7").schema_version == "1.7"


def test_with_reward_keeps_everything_else():
    meta = LogMetadata(arms=(Arm("a", "draft", 0.3, {"m": 1}),), extra={"k": "v"})
    other = meta.with_reward(RewardDefinition("speedup_wall", description="wall"))
    assert other.arms == meta.arms and other.extra == meta.extra and other.reward.kind == "speedup_wall"


_attr_value = st.one_of(st.text(max_size=8), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False), st.booleans())
_arm = st.builds(
    Arm,
    name=st.text(min_size=1, max_size=16).filter(lambda s: s.strip()),
    kind=st.sampled_from(schema.ARM_KINDS),
    cost=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    attrs=st.dictionaries(st.text(max_size=8), _attr_value, max_size=4),
)


@settings(max_examples=60, deadline=None)
@given(
    arms=st.lists(_arm, min_size=1, max_size=30, unique_by=lambda a: a.name),
    kind=st.sampled_from(schema.REWARD_KINDS),
    metric=st.sampled_from(schema.ALIGNMENT_METRICS),
    alpha=st.floats(min_value=0, max_value=100, allow_nan=False),
    extra=st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=20), st.integers(), st.none()), max_size=3),
)
def test_metadata_json_round_trip(arms, kind, metric, alpha, extra):
    meta = LogMetadata(arms=tuple(arms), reward=RewardDefinition(kind, metric, alpha, "d"), extra=extra)
    text = meta.dumps()
    assert LogMetadata.loads(text) == meta
    assert LogMetadata.loads(json.dumps(json.loads(text), indent=2)).dumps() == text


def test_a_built_in_reward_is_the_same_whatever_its_prose_a_custom_one_is_its_description():
    from logging_data.schema import RewardDefinition

    old = RewardDefinition(kind="speedup_count", metric="", description="n / (calls + ...), the wording of an older version")
    assert old.same_definition(RewardDefinition(kind="speedup_count", metric="", description="(n + P p) / (calls + ... + P p)"))
    assert not old.same_definition(RewardDefinition(kind="speedup_count", metric="time_saved", description=old.description))
    assert not old.same_definition(RewardDefinition(kind="speedup_wall", metric="", description=old.description))
    mine = RewardDefinition(kind="custom", description="clicks per session")
    assert mine.same_definition(RewardDefinition(kind="custom", description="clicks per session", priced_by="x"))
    assert not mine.same_definition(RewardDefinition(kind="custom", description="revenue per session"))
