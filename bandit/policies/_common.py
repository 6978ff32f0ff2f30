"""Shared plumbing for the scikit-learn/numpy policies: config base, fitted-state I/O, checks.

A policy here keeps its fitted state as JSON-safe values plus named float64/int64 arrays;
``save`` writes ``policy.json`` and one ``.npy`` per array (``allow_pickle=False``), ``load``
reads them back and refuses a folder saved for other arms.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from bandit.data import TrainingData
from bandit.policy import NotFittedError, sample_actions
from logging_data.validate import first_line

STATE_FILE = "policy.json"


def arm_names_of(arms: Sequence[Any]) -> tuple[str, ...]:
    """Arm names from ``logging_data.Arm`` objects or plain strings, in order; unique and non-empty."""
    names = tuple(a if isinstance(a, str) else a.name for a in arms)
    if not names:
        raise ValueError("a policy needs at least one arm; got none")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"arm names must be unique; repeated: {', '.join(dupes)}")
    return names


def check_number(owner: str, field: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, integer: bool = False) -> None:
    """Raise ValueError naming ``owner.field`` unless ``value`` is a finite number in range."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if integer:
        ok = ok and isinstance(value, int)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        lo = "" if low is None else (f" > {low}" if low_open else f" >= {low}")
        hi = "" if high is None else f" and <= {high}"
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{owner}: {field} must be {kind}{lo}{hi}; got {value!r}")


def check_choice(owner: str, field: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{owner}: {field} must be one of {', '.join(map(repr, choices))}; got {value!r}")


@dataclass(frozen=True)
class PolicyConfigBase:
    """Fields every config here shares. Subclasses set ``name`` and ``policy_class``."""

    featurizer: str = "hashed"  # registry name of the prompt featurizer (logging_data.features)
    seed: int = 0  # seeds everything random in fit (nothing global)

    name: ClassVar[str] = ""
    policy_class: ClassVar[type] = object
    feedback: ClassVar[tuple[str, ...]] = ("full", "bandit")
    hindsight: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not isinstance(self.featurizer, str) or not self.featurizer:
            raise ValueError(f"{self.name}: featurizer must be a featurizer name; got {self.featurizer!r}")
        check_number(self.name, "seed", self.seed, low=0, integer=True)

    def create(self, arms: Sequence[Any]):
        """An unfitted policy over ``arms`` (``logging_data.Arm`` objects or names, in log order)."""
        return self.policy_class(self, arm_names_of(arms))

    def load_policy(self, path: str | Path, arms: Sequence[Any]):
        """The fitted policy saved in folder ``path``; ValueError when it was saved for other arms."""
        policy = self.policy_class(self, arm_names_of(arms))
        policy._load(Path(path))
        return policy


class SavedStatePolicy:
    """Base of the policies here: probabilities from fitted state; act, save and load shared.

    Subclasses implement ``_fit(data)`` (sets attributes ending in ``_`` and returns the training
    metrics), ``_probabilities(x)`` and ``_state() -> (json dict, {name: array})`` /
    ``_restore(json dict, {name: array})``.
    """

    def __init__(self, config: PolicyConfigBase, arm_names: tuple[str, ...]) -> None:
        self.config = config
        self.arm_names = tuple(arm_names)

    def __repr__(self) -> str:
        state = "fitted" if self._fitted() else "unfitted"
        return f"{type(self).__name__}({self.config!r}, arms={list(self.arm_names)}, {state})"

    # -- life cycle ------------------------------------------------------------------------------
    def fit(self, data: TrainingData, checkpoint_dir: Any = None) -> "SavedStatePolicy":
        """Fit on ``data`` (one-shot learners: ``checkpoint_dir`` is accepted and not needed)."""
        if not isinstance(data, TrainingData):
            raise TypeError(f"{self.config.name}.fit takes bandit.data.TrainingData; got {type(data).__name__}")
        if tuple(data.arm_names) != self.arm_names:
            raise ValueError(f"{self.config.name}: training data arms {list(data.arm_names)} differ from the policy's {list(self.arm_names)}")
        kind = "full" if data.is_full_information else "bandit"
        if kind not in type(self.config).feedback:
            accepted = " or ".join(type(self.config).feedback)
            raise ValueError(f"{self.config.name}: fit needs {accepted}-information data; got {kind} feedback")
        if data.n == 0:
            raise ValueError(f"{self.config.name}: cannot fit on 0 training prompts")
        self.n_features_ = int(data.features.shape[1])
        self.training_metrics_ = dict(self._fit(data) or {})
        self.training_metrics_.setdefault("n_train", data.n)
        return self

    def _fitted(self) -> bool:
        return hasattr(self, "n_features_")

    def _check_features(self, features: np.ndarray) -> np.ndarray:
        if not self._fitted():
            raise NotFittedError(f"{self.config.name} policy is not fitted; call fit(data) first (or load a saved one)")
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] != self.n_features_:
            raise ValueError(f"{self.config.name}: features must have shape (n, {self.n_features_}); got {x.shape}")
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{self.config.name}: features must be numeric; got dtype {x.dtype}")
        return x.astype(np.float64, copy=False)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """float64 (n, n_arms) action probabilities for features float (n, d); rows sum to 1."""
        x = self._check_features(features)
        return np.asarray(self._probabilities(x), dtype=np.float64)

    def act(self, features: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(actions int64 (n,), their exact propensities float64 (n,)), sampled with ``rng``."""
        return sample_actions(self.probabilities(features), rng)

    # -- artifact ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``policy.json`` and the fitted arrays as ``.npy`` into folder ``path``."""
        if not self._fitted():
            raise NotFittedError(f"{self.config.name} policy is not fitted; nothing to save")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta, arrays = self._state()
        for key, arr in arrays.items():
            np.save(path / f"{key}.npy", np.asarray(arr), allow_pickle=False)
        record = {"policy": self.config.name, "arm_names": list(self.arm_names), "n_features": self.n_features_,
                  "arrays": sorted(arrays), "state": meta, "training_metrics": self.training_metrics_}
        (path / STATE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")

    def _load(self, path: Path) -> None:
        state_path = path / STATE_FILE
        if not state_path.is_file():
            raise FileNotFoundError(f"{path}: no saved {self.config.name} policy (missing {STATE_FILE})")
        record = json.loads(state_path.read_text(encoding="utf-8"))
        if record.get("policy") != self.config.name:
            raise ValueError(f"{path}: holds a {record.get('policy')!r} policy, not {self.config.name!r}")
        if tuple(record["arm_names"]) != self.arm_names:
            raise ValueError(f"{path}: the policy was saved for arms {record['arm_names']}; asked to load it for {list(self.arm_names)}")
        arrays = {key: _load_array(_array_path(path, key)) for key in record["arrays"]}
        self._restore(record["state"], arrays)
        self.training_metrics_ = dict(record.get("training_metrics", {}))
        self.n_features_ = int(record["n_features"])

    # -- subclass hooks ---------------------------------------------------------------------------
    def _fit(self, data: TrainingData) -> dict[str, Any]:
        raise NotImplementedError

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def _restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        return None


# -- value estimates from either kind of feedback --------------------------------------------------
def arm_values(data: TrainingData, mask: np.ndarray | None = None) -> np.ndarray:
    """Estimated mean reward of always playing each arm, float64 (n_arms,); NaN where unknown.

    Full information: the mean of the measured rewards (NaN entries skipped). Bandit feedback:
    the self-normalised importance-weighted estimate sum(r / p) / sum(1 / p) over the rows that
    chose the arm (which is the plain mean under a uniform logging policy). ``mask`` bool (n,)
    restricts the rows (e.g. one domain).
    """
    rows = np.ones(data.n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    k = data.n_arms
    if data.is_full_information:
        r = data.rewards[rows]
        counts = np.isfinite(r).sum(axis=0)
        sums = np.where(np.isfinite(r), r, 0.0).sum(axis=0)
        return np.divide(sums, counts, out=np.full(k, np.nan), where=counts > 0)
    a, o, w = data.actions[rows], data.observed[rows], 1.0 / data.propensities[rows]
    num = np.bincount(a, weights=o * w, minlength=k)
    den = np.bincount(a, weights=w, minlength=k)
    return np.divide(num, den, out=np.full(k, np.nan), where=den > 0)


def best_arm(values: np.ndarray, owner: str, what: str) -> int:
    """argmax of ``values`` (n_arms,) skipping NaN (ties to the lowest index); ValueError if all NaN."""
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).any():
        raise ValueError(f"{owner}: no arm has a reward estimate {what}")
    return int(np.nanargmax(np.where(np.isfinite(v), v, np.nan)))


def one_hot(index: np.ndarray, n_arms: int) -> np.ndarray:
    idx = np.asarray(index, dtype=np.int64)
    out = np.zeros((idx.shape[0], n_arms), dtype=np.float64)
    out[np.arange(idx.shape[0]), idx] = 1.0
    return out


_ARRAY_NAME = re.compile(r"[A-Za-z0-9_]+")


def _array_path(folder: Path, key: Any) -> Path:
    """``folder/<key>.npy`` for an array name of ``policy.json``; a name that is not plain letters,
    digits and underscores (a path such as ``../x``) is refused, so nothing outside the run folder is read."""
    if not isinstance(key, str) or not _ARRAY_NAME.fullmatch(key):
        raise ValueError(f"{folder / STATE_FILE}: array name {key!r} is not a plain name (letters, digits, _); "
                         f"refusing to read outside the run folder")
    return folder / f"{key}.npy"


def _load_array(path: Path) -> np.ndarray:
    """One saved array, never unpickled; a missing, crafted or corrupt file is named."""
    if not path.is_file():
        raise ValueError(f"{path}: missing (policy.json lists it); the run folder is incomplete")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        first = first_line(e)
        what = "holds pickled (object) data, which is never loaded" if "pickle" in first.lower() else f"is not a numeric .npy array ({first})"
        raise ValueError(f"{path}: {what}; the run folder was changed outside draftpick (retrain it)") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: holds {arr.dtype} data, expected numbers; the run folder was changed outside draftpick")
    return arr
