"""Vowpal Wabbit contextual bandit: ``--cb_explore_adf`` over prompt features and arm features.

VW's text format is the only seam between this package and VW. One small set of module-level
functions (the *adapter*) owns every convention that differs between the two:

- VW learns **costs**; logs hold **rewards**: ``cost = -reward`` (``cost_from_reward``).
- Action ids are 0-based indices into the log's arm list everywhere in this package. With
  ``--cb_explore_adf`` an example is one ``shared`` line (the context) followed by one line per
  arm, in arm order: the action *is* the line's position, and the pmf VW returns is in that same
  order. The label ``action:cost:probability`` goes on the chosen arm's line; its action field is
  written 0-based (VW's ADF reductions ignore it and use the line position; only non-ADF ``--cb``
  reads 1-based action ids from it, which this package never uses).
- Features: the shared line is ``shared |s 0:0.12 3:-1.5`` (feature ``i`` is column ``i`` of the
  prompt features; zeros, and values under 1e-28 in magnitude that VW's parser would read as 0,
  are left out); each arm line is
  ``|a arm=NAME kind=KIND cost:C`` plus the arm's attrs (``key=value`` for strings, ``key:v`` for
  numbers, ``key`` for true booleans). Without an interaction between ``s`` and ``a``
  (``-q sa``, on by default) the chosen arm could not depend on the prompt.

``example_lines`` writes one example; ``export_vw`` writes a whole log in the same text, so a VW
user can train on it with VW alone (``vw --cb_explore_adf -q sa -d log.vw``; tested with VW's own
``-d`` parser through the Python ``Workspace``).

``VWPolicy`` trains a ``vowpalwabbit.Workspace`` online over the training data for
``n_passes`` shuffled passes. Full information (every arm's reward per prompt) is fed as bandit
feedback with the exact propensity of a uniform logging policy over the arms measured for that
prompt: either every measured arm once (``full_information="all_arms"``) or one arm sampled
uniformly (``"sample_uniform"``). Bandit feedback is fed as logged, with its propensities.
``learn_one`` keeps learning online from one new decision (the decode loop's ``--learn``).

The artifact is VW's own binary model (``model.vw``, written by ``Workspace.save``; it stores the
command line, so ``Workspace("--quiet -i model.vw")`` rebuilds the learner) plus ``policy.json``
(config, arms, feature width). ``vowpalwabbit`` is imported only inside this module's functions.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from bandit.policies.backend import BackendConfig, BackendPolicy
from bandit.policy import NotFittedError
from logging_data.files import atomic_write, write_text_atomic
from logging_data.validate import first_line

SHARED_NAMESPACE = "s"
ACTION_NAMESPACE = "a"
CB_TYPES = ("ips", "dr", "mtr")
EXPLORATIONS = ("epsilon", "softmax", "bag", "cover")
FULL_INFORMATION_MODES = ("all_arms", "sample_uniform")
TINY_FEATURE = 1e-28  # |feature values| below this are written as absent (zero)
MODEL_FILE = "model.vw"
META_FILE = "policy.json"

_UNSAFE = re.compile(r"[\s|:]+")


# -- the adapter: every VW text convention lives here --------------------------------------------
def cost_from_reward(reward: float) -> float:
    """VW minimises cost; a log's reward is maximised: ``cost = -reward`` (0.0, never -0.0)."""
    reward = float(reward)
    if not math.isfinite(reward):
        raise ValueError(f"reward must be finite to become a VW cost; got {reward}")
    return 0.0 - reward if reward != 0 else 0.0


def vw_token(value: Any) -> str:
    """A string made safe as a VW feature or namespace token: whitespace, ``|`` and ``:`` -> ``_``."""
    text = _UNSAFE.sub("_", str(value))
    return text if text else "_"


def _feature_value(v: float) -> str:
    # the shortest text that reads back as the same float32 (VW stores feature values as float32;
    # its own number parser is not correctly rounded and may land an ulp or two away)
    return str(np.float32(v))


def cb_label(action: int, cost: float, propensity: float) -> str:
    """The label VW reads on the chosen arm's line: ``action:cost:probability``.

    ``action`` is the 0-based arm id (informational under ADF, where the line position decides),
    ``cost`` is written as given (use ``cost_from_reward``), ``propensity`` exactly (never rounded).
    """
    if not isinstance(action, (int, np.integer)) or action < 0:
        raise ValueError(f"action must be a 0-based arm id (int >= 0); got {action!r}")
    cost, propensity = float(cost), float(propensity)
    if not math.isfinite(cost):
        raise ValueError(f"cost must be finite; got {cost}")
    if not (0 < propensity <= 1):
        raise ValueError(f"propensity must be in (0, 1]; got {propensity!r}")
    return f"{int(action)}:{cost!r}:{propensity!r}"


def shared_line(features: np.ndarray) -> str:
    """The context line for one prompt: ``shared |s 0:0.5 2:-1.25`` from float features (d,)."""
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"features for one prompt must have shape (d,); got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise ValueError(f"features must be finite; column {bad} is {x[bad]}")
    # VW's own parser reads magnitudes below about 1e-35 as 0 and drops the feature; leave out
    # what it would drop, so the text says what VW learns from
    parts = [f"{i}:{_feature_value(x[i])}" for i in np.flatnonzero(np.abs(x) >= TINY_FEATURE)]
    return " ".join(["shared", f"|{SHARED_NAMESPACE}", *parts])


def action_features(arm: Any) -> str:
    """The features of one arm (a ``logging_data.Arm``): identity, kind, cost and its attrs."""
    parts = [f"arm={vw_token(arm.name)}", f"kind={vw_token(arm.kind)}", f"cost:{_feature_value(arm.cost)}"]
    for key in sorted(arm.attrs):
        value = arm.attrs[key]
        key_t = vw_token(key)
        if isinstance(value, bool):
            if value:
                parts.append(key_t)
        elif isinstance(value, int):
            parts.append(f"{key_t}:{value}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"arm {arm.name!r}: attribute {key!r} must be finite; got {value}")
            parts.append(f"{key_t}:{_feature_value(value)}")
        else:
            parts.append(f"{key_t}={vw_token(value)}")
    return f"|{ACTION_NAMESPACE} " + " ".join(parts)


def example_lines(features: np.ndarray, arms: Sequence[Any], label: tuple[int, float, float] | None = None) -> list[str]:
    """One ``--cb_explore_adf`` example: the shared line, then one line per arm in arm order.

    ``label`` is ``(chosen arm id 0-based, cost, propensity)`` for learning, or None to predict.
    """
    return _assemble(shared_line(features), [action_features(a) for a in arms], label)


def _assemble(shared: str, actions: Sequence[str], label: tuple[int, float, float] | None) -> list[str]:
    """The example's lines from a formatted shared line and arm lines, the label on the chosen arm."""
    lines = [shared, *actions]
    if label is not None:
        action, cost, propensity = label
        if not 0 <= int(action) < len(actions):
            raise ValueError(f"chosen arm id must be in [0, {len(actions)}); got {action}")
        lines[1 + int(action)] = f"{cb_label(int(action), cost, propensity)} {lines[1 + int(action)]}"
    return lines


def _labelled_rows(frame: Any, arm_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(arm ids, costs, propensities, query ids) of a decisions or outcomes table, validated."""
    cols = set(frame.columns)
    for c in ("query_id", "arm", "reward"):
        if c not in cols:
            raise ValueError(f"log table must have a {c!r} column; found {', '.join(map(str, frame.columns))}")
    qids = frame["query_id"].astype(str).tolist()
    index = {n: i for i, n in enumerate(arm_names)}
    arms = frame["arm"].astype(str).tolist()
    unknown = [(q, a) for q, a in zip(qids, arms) if a not in index]
    if unknown:
        raise ValueError(f"arm must be one of {', '.join(arm_names)}; {len(unknown)} rows are not (first: query_id={unknown[0][0]}, arm={unknown[0][1]!r})")
    actions = np.array([index[a] for a in arms], dtype=np.int64)
    rewards = frame["reward"].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(rewards))
    if bad.size:
        raise ValueError(f"reward must be finite; {bad.size} rows are not (first: query_id={qids[bad[0]]})")
    if "propensity" in cols:  # decisions: the logged propensity, exactly
        props = frame["propensity"].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~((props > 0) & (props <= 1)))
        if bad.size:
            raise ValueError(f"propensity must be in (0, 1]; {bad.size} rows are not (first: query_id={qids[bad[0]]})")
    else:  # outcomes: uniform logging over the arms measured for the prompt
        counts: dict[str, int] = {}
        for q in qids:
            counts[q] = counts.get(q, 0) + 1
        props = np.array([1.0 / counts[q] for q in qids], dtype=np.float64)
    costs = np.array([cost_from_reward(r) for r in rewards], dtype=np.float64)
    return actions, costs, props, qids


def export_vw(frame: Any, arms: Sequence[Any], features: Any, path: str | os.PathLike, query_ids: Sequence[str] | None = None) -> int:
    """Write a log table as VW ``--cb_explore_adf`` text; returns the number of examples written.

    ``frame`` is a decisions table (one example per row, labelled with its logged propensity) or
    an outcomes table (one example per (prompt, arm) row, with propensity 1 / the number of arms
    measured for that prompt: the uniform logging policy over them). ``features`` is either a
    float array (n_queries, d) whose rows follow ``query_ids`` (default: the table's query ids in
    first-seen order), or a fitted featurizer with ``transform(texts)`` applied to the table's
    ``prompt`` column. Examples are separated by blank lines, as VW's multi-line parser expects.
    The file is written to a temporary name and renamed, so a failure leaves no partial file.
    """
    arms = tuple(arms)
    arm_names = tuple(a.name for a in arms)
    actions, costs, props, qids = _labelled_rows(frame, arm_names)
    order = list(dict.fromkeys(qids))
    if hasattr(features, "transform"):
        first = frame.drop_duplicates("query_id")
        texts = dict(zip(first["query_id"].astype(str), first["prompt"].astype(str)))
        x = np.asarray(features.transform([texts[q] for q in order]), dtype=np.float32)
        row_of = {q: i for i, q in enumerate(order)}
    else:
        x = np.asarray(features, dtype=np.float32)
        keys = list(query_ids) if query_ids is not None else order
        if x.ndim != 2 or x.shape[0] != len(keys):
            raise ValueError(f"features must have shape (n_queries, d) = ({len(keys)}, d); got shape {x.shape}")
        row_of = {str(q): i for i, q in enumerate(keys)}
        missing = [q for q in order if q not in row_of]
        if missing:
            raise ValueError(f"features have no row for {len(missing)} query ids of the table (first: {missing[0]})")
    shared = {q: shared_line(x[row_of[q]]) for q in order}
    arm_lines = [action_features(a) for a in arms]
    blocks = ["\n".join(_assemble(shared[q], arm_lines, (int(a), c, p))) for q, a, c, p in zip(qids, actions, costs, props)]
    write_text_atomic(path, "\n\n".join(blocks) + ("\n" if blocks else ""))
    return len(blocks)


# -- the policy ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class VWConfig(BackendConfig):
    """Settings of a Vowpal Wabbit ``--cb_explore_adf`` policy."""

    name: ClassVar[str] = "vw"
    tuple_fields: ClassVar[tuple[str, ...]] = ("interactions",)
    featurizer: str = "hashed"
    seed: int = 0  # VW's --random_seed and the order of examples within each pass
    cb_type: str = "mtr"  # ips | dr | mtr: how VW turns logged costs into a learning signal
    exploration: str = "epsilon"  # epsilon | softmax | bag | cover: the pmf VW returns
    epsilon: float = 0.05  # exploration mass (epsilon, bag, cover)
    softmax_lambda: float = 10.0  # inverse temperature for exploration="softmax"
    bag_size: int = 5  # policies in the bag for exploration="bag"
    cover_size: int = 3  # policies in the cover for exploration="cover"
    learning_rate: float = 0.5
    bit_precision: int = 18  # -b: 2**b weights
    interactions: tuple[str, ...] = ("sa",)  # -q pairs; "sa" lets the arm depend on the prompt
    n_passes: int = 3  # shuffled passes over the training data
    full_information: str = "all_arms"  # all_arms | sample_uniform (see the module docstring)
    max_features: int = 4096  # refuse wider prompt features than this (keeps the text compact)

    def __post_init__(self) -> None:
        checks = [
            (self.cb_type in CB_TYPES, f"cb_type must be one of {', '.join(CB_TYPES)}; got {self.cb_type!r}"),
            (self.exploration in EXPLORATIONS, f"exploration must be one of {', '.join(EXPLORATIONS)}; got {self.exploration!r}"),
            (self.full_information in FULL_INFORMATION_MODES, f"full_information must be one of {', '.join(FULL_INFORMATION_MODES)}; got {self.full_information!r}"),
            (0 <= self.epsilon <= 1, f"epsilon must be in [0, 1]; got {self.epsilon}"),
            (self.softmax_lambda > 0, f"softmax_lambda must be > 0; got {self.softmax_lambda}"),
            (self.bag_size >= 1, f"bag_size must be >= 1; got {self.bag_size}"),
            (self.cover_size >= 1, f"cover_size must be >= 1; got {self.cover_size}"),
            (self.learning_rate > 0, f"learning_rate must be > 0; got {self.learning_rate}"),
            (1 <= self.bit_precision <= 30, f"bit_precision must be in [1, 30]; got {self.bit_precision}"),
            (self.n_passes >= 1, f"n_passes must be >= 1; got {self.n_passes}"),
            (self.max_features >= 1, f"max_features must be >= 1; got {self.max_features}"),
            (isinstance(self.seed, int) and self.seed >= 0, f"seed must be an int >= 0; got {self.seed!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"VWConfig: {message}")
        object.__setattr__(self, "interactions", tuple(self.interactions))
        for q in self.interactions:
            if not (isinstance(q, str) and len(q) == 2):
                raise ValueError(f"VWConfig: interactions must be pairs of namespace letters like 'sa'; got {q!r}")

    def vw_args(self) -> list[str]:
        """The VW command line this config trains with (without data or model paths)."""
        args = ["--cb_explore_adf", "--cb_type", self.cb_type, "--quiet", "--random_seed", str(self.seed)]
        args += ["-b", str(self.bit_precision), "-l", repr(float(self.learning_rate))]
        for q in self.interactions:
            args += ["-q", q]
        if self.exploration == "epsilon":
            args += ["--epsilon", repr(float(self.epsilon))]
        elif self.exploration == "softmax":
            args += ["--softmax", "--lambda", repr(float(self.softmax_lambda))]
        elif self.exploration == "bag":
            args += ["--bag", str(self.bag_size), "--epsilon", repr(float(self.epsilon))]
        else:
            args += ["--cover", str(self.cover_size), "--epsilon", repr(float(self.epsilon))]
        return args


class VWPolicy(BackendPolicy):
    """A fitted-or-not VW ``--cb_explore_adf`` learner over a fixed, ordered list of arms."""

    config: VWConfig

    # -- training --
    def _fit(self, data: Any, checkpoint_dir: Any) -> None:
        """Train a fresh workspace on ``data``: VW trains in one pass over memory in seconds, so
        ``checkpoint_dir`` is accepted and unused."""
        import vowpalwabbit

        x = data.features
        if x.shape[1] > self.config.max_features:
            raise ValueError(f"features have {x.shape[1]} columns; VWConfig.max_features is {self.config.max_features} (use a smaller featurizer or raise the limit)")
        rows, actions, costs, props = self._training_examples(data)
        if rows.size == 0:
            raise ValueError("training data has no usable example (every reward is NaN)")
        from tqdm.auto import tqdm

        rng = np.random.default_rng(self.config.seed)
        # each prompt's shared line and each arm's line are formatted once, then reused
        shared = {int(r): shared_line(x[r]) for r in np.unique(rows)}
        arm_lines = [action_features(a) for a in self.arms]
        workspace = vowpalwabbit.Workspace(arg_list=self.config.vw_args())
        n_passes = self.config.n_passes
        with tqdm(total=n_passes * rows.size, desc="vw", unit="ex", file=sys.stderr, disable=None, leave=False) as bar:
            for _ in range(n_passes):
                for j in rng.permutation(rows.size):
                    workspace.learn(_assemble(shared[int(rows[j])], arm_lines, (int(actions[j]), costs[j], props[j])))
                bar.update(rows.size)
        self.workspace_ = workspace
        self.n_features_ = int(x.shape[1])
        self.training_metrics_ = {"examples_per_pass": int(rows.size), "passes": n_passes, "vw_args": self.config.vw_args()}

    def _training_examples(self, data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(row, arm id, cost, propensity) per VW example, from full information or bandit feedback."""
        if not data.is_full_information:
            costs = -data.observed
            return np.arange(data.n), data.actions, np.where(costs == 0, 0.0, costs), data.propensities
        measured = np.isfinite(data.rewards)
        n_measured = measured.sum(axis=1)
        if self.config.full_information == "all_arms":
            rows, actions = np.nonzero(measured)
        else:
            rng = np.random.default_rng([self.config.seed, 1])
            rows = np.flatnonzero(n_measured > 0)
            u = rng.random(rows.size)
            # pick the floor(u * k)-th measured arm of each row: uniform over the measured arms
            pick = np.floor(u * n_measured[rows]).astype(np.int64)
            actions = np.array([np.flatnonzero(measured[r])[k] for r, k in zip(rows, pick)], dtype=np.int64)
        rewards = data.rewards[rows, actions]
        costs = np.where(rewards == 0, 0.0, -rewards)
        return rows, actions.astype(np.int64), costs, 1.0 / n_measured[rows]

    def learn_one(self, features: np.ndarray, chosen_arm: int, reward: float, propensity: float) -> None:
        """One online update from one decision: features (d,), 0-based arm id, its reward and propensity."""
        ws = self._workspace()
        x = np.asarray(features, dtype=np.float32)
        if x.shape != (self.n_features_,):
            raise ValueError(f"features must have shape ({self.n_features_},); got {x.shape}")
        ws.learn(example_lines(x, self.arms, (int(chosen_arm), cost_from_reward(reward), float(propensity))))

    # -- inference --
    def _workspace(self) -> Any:
        if not hasattr(self, "workspace_"):
            raise NotFittedError("VWPolicy is not fitted; call fit(data) or VWConfig.load_policy(path, arms) first")
        return self.workspace_

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """VW's pmf per prompt, float64 (n, n_arms) in arm order; rows sum to 1."""
        ws = self._workspace()
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features_:
            raise ValueError(f"features must have shape (n, {self.n_features_}); got shape {x.shape}")
        out = np.empty((x.shape[0], len(self.arms)), dtype=np.float64)
        arm_lines = [action_features(a) for a in self.arms]
        for i in range(x.shape[0]):
            out[i] = ws.predict(_assemble(shared_line(x[i]), arm_lines, None))
        return out / out.sum(axis=1, keepdims=True)

    # -- artifact --
    def save(self, path: str | os.PathLike) -> None:
        """Write ``model.vw`` (VW's binary format) and ``policy.json`` into the folder ``path``."""
        ws = self._workspace()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write(path / MODEL_FILE, lambda tmp: ws.save(str(tmp)))
        (path / META_FILE).write_text(json.dumps(self.saved_meta(vw_args=self.config.vw_args()), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike, arms: Sequence[Any]) -> "VWPolicy":
        """Rebuild a saved policy: a fresh ``Workspace("--quiet -i model.vw")`` and its metadata."""
        import vowpalwabbit

        path, meta, arms = cls.read_saved(path, arms, (MODEL_FILE, META_FILE), META_FILE, "VW")
        cfg = dict(meta["config"])
        cfg["interactions"] = tuple(cfg.get("interactions", ()))
        policy = cls(VWConfig(**cfg), arms)
        model = path / MODEL_FILE
        if not model.is_file():
            raise ValueError(f"{model}: missing; the run folder is incomplete")
        try:
            policy.workspace_ = vowpalwabbit.Workspace(arg_list=["--quiet", "-i", str(model)])
        except Exception as e:  # VW says only "Bad model format." for a crafted or truncated file
            raise ValueError(f"{model}: not a readable Vowpal Wabbit model ({first_line(e)}); the run folder was changed outside "
                             f"draftpick (retrain it)") from None
        policy.n_features_ = int(meta["n_features"])
        return policy


VWConfig.policy_class = VWPolicy
