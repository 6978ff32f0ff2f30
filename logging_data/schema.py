"""The log contract: what a draft-selection log holds, declared once, in code.

A *log* is a directory. It holds up to two tables, each a directory of Parquet parts:

```
LOG/
  _log.json                 the metadata (below), written once when the log is created
  outcomes/part-*.parquet   full information: one row per (prompt, arm)
  decisions/part-*.parquet  bandit feedback: one row per (prompt, policy)
```

Plain tools read a table without this package: ``pandas.read_parquet("LOG/outcomes")``,
``pyarrow.dataset.dataset("LOG/outcomes")`` or DuckDB's
``read_parquet('LOG/outcomes/*.parquet')``. Files whose names start with ``_`` or ``.``
(the metadata file, temporary files of an append in progress) are ignored by all three.
Every part holds every declared column, in declared order, so the parts of a table share one
schema; only ``x_`` extras (below) may differ between parts. Plain readers take their columns
from one part, so to see an extra that only later parts carry, ask them to unify:
DuckDB's ``read_parquet(..., union_by_name=true)``, or pyarrow's
``dataset(..., schema=unified_schema)``; ``Log.read`` always unifies.

Metadata (``LogMetadata``), stored in ``_log.json`` and repeated in the key-value metadata of
every part's Parquet footer under the key ``draftpick``, so that one part read on its own still
says what it is:

- ``schema_version``: the version of this contract (``SCHEMA_VERSION``). A reader refuses a
  log with a newer major version.
- ``arms``: the ordered list of arms. An arm's index in this list is its action id everywhere in
  the package (0-based). Names are unique.
- ``reward``: the reward definition (``RewardDefinition``): which quantity the ``reward`` column
  holds, and for alignment rewards the cost weight ``alpha``.
- ``extra``: free-form JSON (hardware, library versions, the command that built the log).

Invariants (checked all at once by ``logging_data.validate``):

outcomes
  - every declared column present with its declared Arrow type (nullable columns may be null);
  - ``arm`` is one of the metadata's arms;
  - ``(query_id, arm)`` is unique across all parts;
  - ``reward`` is finite (no NaN, no inf).
decisions
  - the same column rules;
  - ``arm`` is one of the metadata's arms;
  - ``propensity`` is the exact float64 probability with which the logging policy chose
    ``arm``: in (0, 1], never rounded;
  - ``(query_id, policy_id)`` is unique across all parts;
  - ``reward`` is finite.
both
  - query-level columns (``prompt``, ``domain``, ``split``) agree for the same ``query_id``,
    within a table and between the two tables (null equals null);
  - ``split`` is null or one of ``train``, ``validation``, ``test``;
  - every part's footer metadata equals ``_log.json`` and names the part's own table;
  - a table directory holds only parts (``part-*.parquet``) and hidden files: anything else
    would be read by plain readers without being part of the log.

Values are written with their declared types and are never coerced across kinds: numbers given
as text, booleans as rewards or integers as ids are refused (see ``logging_data.io.to_arrow``).
``Log.append`` checks new rows on their own and against everything already written (keys,
query-level columns, extras' types) and writes nothing when any check fails.

Columns whose names start with ``x_`` are user extras: allowed and carried along; their values
are not checked, but an extra keeps one Arrow type across all parts of a table.
Any other undeclared column is an error, so that a typo is never silently carried.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

import pyarrow as pa

SCHEMA_VERSION = "1.2"
METADATA_KEY = b"draftpick"
TABLES = ("outcomes", "decisions")
SPLITS = ("train", "validation", "test")
EXTRA_PREFIX = "x_"


@dataclass(frozen=True)
class Column:
    """One declared column: its name, Arrow type, whether it may hold nulls, its meaning, and the
    schema version that added it (``since``).

    Schema evolution: a column added after ``1.0`` gets ``since`` = the new ``SCHEMA_VERSION``
    (a minor bump), must be nullable and goes after the existing ones. A log made under an older version stays valid without
    it, and reading that log fills it with nulls (``Log.read``).
    """

    name: str
    type: pa.DataType
    nullable: bool
    doc: str
    since: str = "1.0"

    def required_in(self, version: str | None) -> bool:
        """Whether a log of schema ``version`` (default: this package's) must have this column."""
        return version_key(self.since) <= version_key(version or SCHEMA_VERSION)

    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.nullable)


# Query-level columns ride along in both tables.
QUERY_COLUMNS: tuple[Column, ...] = (
    Column("query_id", pa.string(), False, "Stable identifier of the prompt; the join key."),
    Column("prompt", pa.string(), False, "The prompt text as given to the target (may be empty in a log; decoding refuses empty prompts)."),
    Column("domain", pa.string(), True, "Domain or task label when known (code, translate, ...)."),
    Column("split", pa.string(), True, "train, validation or test; null when unassigned."),
)

OUTCOME_COLUMNS: tuple[Column, ...] = QUERY_COLUMNS + (
    Column("arm", pa.string(), False, "Arm name; one of the metadata's arms."),
    Column("reward", pa.float64(), False, "The reward under the log's reward definition; finite."),
    # alignment between the arm's own greedy output and the target's greedy output
    Column("align_prefix", pa.float64(), True, "Longest common prefix of arm and target greedy tokens / target length, in [0, 1]."),
    Column("align_position", pa.float64(), True, "Share of positions where arm and target tokens agree, in [0, 1]."),
    Column("align_lcs", pa.float64(), True, "Longest common subsequence / target length, in [0, 1]."),
    Column("align_accept", pa.float64(), True, "Expected accepted tokens per draft block under greedy verification, divided by the block size, in [0, 1]."),
    Column("arm_cost", pa.float64(), True, "Relative cost of one draft step against one target step (0 for no draft)."),
    # measured assisted decoding
    Column("n_new_tokens", pa.int64(), True, "Tokens generated (same for every arm under greedy decoding)."),
    Column("target_calls", pa.int64(), True, "Target forward passes in assisted decoding."),
    Column("draft_calls", pa.int64(), True, "Draft forward passes (0 for prompt lookup and plain decoding)."),
    Column("draft_tokens", pa.int64(), True, "Candidate tokens proposed by the draft."),
    Column("accepted_tokens", pa.int64(), True, "Candidate tokens accepted by the target."),
    Column("wall_time_s", pa.float64(), True, "Median wall time of assisted decoding over the repeats, seconds."),
    Column("plain_wall_time_s", pa.float64(), True, "Median wall time of plain greedy decoding of the same prompt, seconds."),
    Column("tokens_per_s", pa.float64(), True, "n_new_tokens / wall_time_s."),
    Column("speedup_wall", pa.float64(), True, "plain_wall_time_s / wall_time_s."),
    Column("speedup_count", pa.float64(), True, "Speed-up modelled from the counts and the machine's calibrated per-call costs."),
    Column("n_repeats", pa.int64(), True, "Timed repeats behind wall_time_s."),
    Column("n_threads", pa.int64(), True, "torch threads used while timing."),
    Column("lossless", pa.bool_(), True, "Assisted output identical to plain greedy output, token for token."),
    Column("arm_output", pa.string(), True, "The arm's own greedy output text (None for measured-only rows)."),
    Column("target_output", pa.string(), True, "The target's greedy output text."),
    # added after 1.0: appended, nullable, with the version that added them (reading an older log fills nulls)
    Column("token_match_rate", pa.float64(), True, "Share of the plain greedy output reproduced token for token before the "
           "first difference: 1.0 when lossless (an inexact dtype can lower it); null when unchecked.", since="1.1"),
    Column("n_prompt_tokens", pa.int64(), True, "Tokens of the prompt as the target reads it (chat template included): what "
           "the count model charges for the prefill; null in logs that predate it (their counts are priced without it).",
           since="1.2"),
)

DECISION_COLUMNS: tuple[Column, ...] = QUERY_COLUMNS + (
    Column("arm", pa.string(), False, "The chosen arm; one of the metadata's arms."),
    Column("propensity", pa.float64(), False, "Exact probability the logging policy gave the chosen arm, in (0, 1]."),
    Column("reward", pa.float64(), False, "The observed reward of the chosen arm; finite."),
    Column("policy_id", pa.string(), False, "Which policy chose (a run id, or a simulated logging policy's name)."),
    Column("decided_at", pa.timestamp("us", tz="UTC"), True, "When the decision was made."),
    Column("choose_time_s", pa.float64(), True, "Seconds spent choosing (features + policy)."),
    Column("wall_time_s", pa.float64(), True, "Wall time of decoding with the chosen arm, seconds."),
    Column("n_new_tokens", pa.int64(), True, "Tokens generated."),
    Column("target_calls", pa.int64(), True, "Target forward passes."),
    Column("accepted_tokens", pa.int64(), True, "Draft tokens accepted."),
    Column("lossless", pa.bool_(), True, "Output identical to plain greedy, token for token."),
    Column("token_match_rate", pa.float64(), True, "Share of the plain greedy output reproduced token for token before the "
           "first difference: 1.0 when lossless; null when unchecked.", since="1.1"),
)

COLUMNS: dict[str, tuple[Column, ...]] = {"outcomes": OUTCOME_COLUMNS, "decisions": DECISION_COLUMNS}
# The query-level columns besides the key: one value per query_id, in both tables.
QUERY_LEVEL: tuple[str, ...] = tuple(c.name for c in QUERY_COLUMNS if c.name != "query_id")
KEYS: dict[str, tuple[str, str]] = {"outcomes": ("query_id", "arm"), "decisions": ("query_id", "policy_id")}


def version_key(version: str) -> tuple[int, ...]:
    """``"1.10"`` -> ``(1, 10)``: schema versions compare numerically, part by part."""
    try:
        return tuple(int(x) for x in str(version).split("."))
    except ValueError:
        raise ValueError(f"a schema version is numbers separated by dots (e.g. 1.0); got {version!r}") from None


def arrow_schema(table: str) -> pa.Schema:
    """The declared Arrow schema of ``table`` ('outcomes' or 'decisions'), without extras."""
    return pa.schema([c.field() for c in columns(table)])


def columns(table: str) -> tuple[Column, ...]:
    if table not in COLUMNS:
        raise ValueError(f"table must be one of {', '.join(TABLES)}; got {table!r}")
    return COLUMNS[table]


ARM_KINDS = ("none", "draft", "prompt_lookup", "early_exit", "head", "lookup_head", "datastore", "datastore_head", "lookup_draft", "unknown")


@dataclass(frozen=True)
class Arm:
    """One arm: a way to decode. ``cost`` is one draft step's cost relative to one target step.

    ``attrs`` holds descriptive features (draft parameters in millions, family, number of draft
    tokens...) that policies may use as action features; values are str, int or float.
    """

    name: str
    kind: str = "unknown"
    cost: float = 0.0
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"arm name must be a non-empty string; got {self.name!r}")
        if self.kind not in ARM_KINDS:
            raise ValueError(f"arm {self.name!r}: kind must be one of {', '.join(ARM_KINDS)}; got {self.kind!r}")
        if not (isinstance(self.cost, (int, float)) and math.isfinite(self.cost) and self.cost >= 0):
            raise ValueError(f"arm {self.name!r}: cost must be a finite number >= 0; got {self.cost!r}")
        for k, v in dict(self.attrs).items():
            if not isinstance(v, (str, int, float, bool)):
                raise ValueError(f"arm {self.name!r}: attribute {k!r} must be str, int, float or bool; got {type(v).__name__}")
        object.__setattr__(self, "attrs", dict(self.attrs))

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "cost": float(self.cost), "attrs": dict(self.attrs)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Arm":
        if not isinstance(d, Mapping) or "name" not in d:
            raise ValueError(f"an arm entry must be an object with a 'name'; got {d!r}")
        return cls(name=d["name"], kind=d.get("kind", "unknown"), cost=float(d.get("cost", 0.0)), attrs=d.get("attrs", {}))


def as_arms(arms: Sequence[Any]) -> tuple[Arm, ...]:
    """``Arm`` objects, in order; plain names become arms without attributes."""
    return tuple(a if isinstance(a, Arm) else Arm(str(a)) for a in arms)


REWARD_KINDS = ("alignment", "speedup_wall", "speedup_count", "custom")
ALIGNMENT_METRICS = ("align_prefix", "align_position", "align_lcs", "align_accept")
SPEEDUP_KINDS = ("speedup_count", "speedup_wall")  # reward kinds whose reward is a speed-up (or the time it saves)
# Every reward a builder can write, by the name the command line takes: an alignment metric, a
# speed-up, or the share of plain decoding time saved (``1 - 1/speed-up``).
REWARD_CHOICES = ALIGNMENT_METRICS + SPEEDUP_KINDS + ("time_saved_count", "time_saved_wall")
#: how a speed-up reward is scaled: "" = the speed-up itself; "time_saved" = 1 - 1 / speed-up
SPEEDUP_SCALES = ("", "time_saved")


@dataclass(frozen=True)
class RewardDefinition:
    """What the ``reward`` column means.

    - ``alignment``: ``reward = <metric> - alpha * arm_cost``; the no-draft arm scores 0, so a
      draft is worth it only where its alignment exceeds ``alpha`` times its cost (the
      research's trade-off: a larger alpha favours cheaper drafts).
    - ``speedup_wall``: measured wall-clock speed-up over plain decoding of the same prompt.
    - ``speedup_count``: speed-up modelled from deterministic counts and calibrated call costs.
    - ``custom``: anything else; ``description`` must say what.

    For the two speed-up kinds ``metric`` is the scale: ``""`` (the speed-up ``s`` itself; an
    alignment metric name, the field's default, which speed-ups used to ignore, reads as ``""``) or
    ``"time_saved"`` (``1 - 1/s``: the share of plain decoding time the arm saves, negative where
    it is slower). A mean of speed-ups over prompts is dominated by the few prompts an arm makes
    several times faster; a mean of time saved is the share of total decoding time saved (for
    outputs of equal length), which is what a wall clock over many prompts measures.

    ``priced_by``: which step costs priced the counts (the ``speedup_count`` and alignment
    rewards use them): e.g. ``"cost profile examples/profiles/h200-smollm2-135m-fp32.json
    (cuda: NVIDIA H200)"``, or the build's own calibration. Empty where unknown (logs written
    before it was recorded) and for rewards no step cost enters; omitted from the JSON then.
    """

    kind: str = "alignment"
    metric: str = "align_accept"
    alpha: float = 0.0
    description: str = ""
    priced_by: str = ""

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise ValueError(f"reward kind must be one of {', '.join(REWARD_KINDS)}; got {self.kind!r}")
        if self.kind == "alignment" and self.metric not in ALIGNMENT_METRICS:
            raise ValueError(f"alignment reward metric must be one of {', '.join(ALIGNMENT_METRICS)}; got {self.metric!r}")
        if self.kind in ("speedup_wall", "speedup_count"):
            if self.metric in ALIGNMENT_METRICS:  # the field's default, which speed-ups always ignored: the speed-up itself
                object.__setattr__(self, "metric", "")
            if self.metric not in SPEEDUP_SCALES:
                raise ValueError(f"{self.kind} reward metric (its scale) must be '' (the speed-up) or 'time_saved' "
                                 f"(1 - 1/speed-up); got {self.metric!r}")
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"reward alpha must be a finite number >= 0; got {self.alpha!r}")
        if not isinstance(self.priced_by, str):
            raise ValueError(f"reward priced_by must be a string (which step costs priced the counts); got {self.priced_by!r}")

    def to_json(self) -> dict:
        d = asdict(self)
        if not self.priced_by:  # logs written before the field existed stay byte-identical
            del d["priced_by"]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "RewardDefinition":
        return cls(**{k: d[k] for k in ("kind", "metric", "alpha", "description", "priced_by") if k in d})

    def same_definition(self, other: "RewardDefinition") -> bool:
        """Whether both define the same reward, whatever priced their counts. A built-in kind is
        defined by its kind, metric and alpha (its description is prose the package writes, and may
        be reworded by a later version: a log built before must still resume); a custom reward by its
        description too."""
        if self.kind == "custom" or other.kind == "custom":
            return replace(self, priced_by="") == replace(other, priced_by="")
        return (self.kind, self.metric, self.alpha) == (other.kind, other.metric, other.alpha)


@dataclass(frozen=True)
class LogMetadata:
    """The log-level metadata: schema version, ordered arms, reward definition, free extras."""

    arms: tuple[Arm, ...]
    reward: RewardDefinition = field(default_factory=RewardDefinition)
    schema_version: str = SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arms = tuple(a if isinstance(a, Arm) else Arm.from_json(a) for a in self.arms)
        if not arms:
            raise ValueError("a log needs at least one arm; got an empty arm list")
        names = [a.name for a in arms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(dupes)}")
        object.__setattr__(self, "arms", arms)
        object.__setattr__(self, "extra", dict(self.extra))
        major = str(self.schema_version).split(".")[0]
        if major != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(
                f"schema_version {self.schema_version!r} is not readable by this version of the package (reads {SCHEMA_VERSION.split('.')[0]}.x)"
            )

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    def arm_index(self, name: str) -> int:
        try:
            return self.arm_names.index(name)
        except ValueError:
            raise KeyError(f"unknown arm {name!r}; the log's arms are {', '.join(self.arm_names)}") from None

    def to_json(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "arms": [a.to_json() for a in self.arms],
            "reward": self.reward.to_json(),
            "extra": dict(self.extra),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "LogMetadata":
        for key in ("schema_version", "arms", "reward"):
            if key not in d:
                raise ValueError(f"log metadata is missing {key!r}; found keys {sorted(d)}")
        return cls(
            arms=tuple(Arm.from_json(a) for a in d["arms"]),
            reward=RewardDefinition.from_json(d["reward"]),
            schema_version=str(d["schema_version"]),
            extra=d.get("extra", {}),
        )

    @classmethod
    def loads(cls, text: str | bytes) -> "LogMetadata":
        return cls.from_json(json.loads(text))

    def with_reward(self, reward: RewardDefinition) -> "LogMetadata":
        return LogMetadata(arms=self.arms, reward=reward, schema_version=self.schema_version, extra=self.extra)
