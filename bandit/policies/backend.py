"""Shared plumbing of the policies whose model lives in a backend (REINFORCE in torch, Vowpal Wabbit, d3rlpy).

``BackendPolicy`` holds the config and the arms (``logging_data.Arm``), checks the training
data's arms before ``_fit`` trains, acts from ``probabilities``, and writes and checks the saved
folder's ``policy.json`` metadata; ``BackendConfig`` gives its config ``create``, ``load_policy``
and ``to_json``. The backends themselves are imported inside the subclasses' methods.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from bandit.policy import check_training_arms, sample_actions
from logging_data.schema import as_arms


class BackendConfig:
    """Mixin of a frozen config dataclass: ``policy_class`` (the ``BackendPolicy`` it creates, set
    once that class is defined) and ``tuple_fields`` (settings held as tuples, saved as lists)."""

    policy_class: ClassVar[type]
    tuple_fields: ClassVar[tuple[str, ...]] = ()

    def create(self, arms: Sequence[Any]) -> Any:
        """An unfitted policy over ``arms`` (``logging_data.Arm`` objects or names, in log order)."""
        return self.policy_class(self, arms)

    def load_policy(self, path: str | os.PathLike, arms: Sequence[Any]) -> Any:
        """The fitted policy saved in folder ``path``; ValueError when it was saved for other arms."""
        return self.policy_class.load(path, arms)

    def to_json(self) -> dict:
        d = asdict(self)  # type: ignore[call-overload]
        d.update({name: list(d[name]) for name in self.tuple_fields})
        return d


class BackendPolicy:
    """A policy over a fixed, ordered list of arms; subclasses implement ``_fit(data, checkpoint_dir)``
    (sets the fitted attributes, ending in ``_``), ``probabilities``, ``save`` and ``load``."""

    def __init__(self, config: Any, arms: Sequence[Any]) -> None:
        self.config = config
        self.arms = as_arms(arms)
        self.arm_names = tuple(a.name for a in self.arms)

    def fit(self, data: Any, checkpoint_dir: str | os.PathLike | None = None) -> Any:
        """Train on ``bandit.data.TrainingData`` (full information or bandit feedback); returns self."""
        check_training_arms(data, self.arm_names)
        self._fit(data, checkpoint_dir)
        return self

    def _fit(self, data: Any, checkpoint_dir: str | os.PathLike | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def act(self, features: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return sample_actions(self.probabilities(features), rng)  # type: ignore[attr-defined]

    def saved_meta(self, **extra: Any) -> dict[str, Any]:
        """``policy.json``'s record: the policy's name, its config, its arms, the feature width, and ``extra``."""
        return {"policy": self.config.name, "config": self.config.to_json(), "arms": [a.to_json() for a in self.arms],
                "n_features": self.n_features_, **extra}  # type: ignore[attr-defined]

    @staticmethod
    def read_saved(path: str | os.PathLike, arms: Sequence[Any], files: Sequence[str], meta_file: str,
                   label: str) -> tuple[Path, dict[str, Any], tuple]:
        """(folder, ``policy.json``'s record, ``as_arms(arms)``) of a saved ``label`` policy: every file of
        ``files`` present, and saved for the same arms in the same order (else an error naming both)."""
        path = Path(path)
        for f in files:
            if not (path / f).is_file():
                raise FileNotFoundError(f"{path} is not a saved {label} policy: {f} is missing")
        meta = json.loads((path / meta_file).read_text(encoding="utf-8"))
        arms = as_arms(arms)
        saved = [a["name"] for a in meta["arms"]]
        if saved != [a.name for a in arms]:
            raise ValueError(f"saved {label} policy was trained on arms {saved}; got arms {[a.name for a in arms]}")
        return path, meta, arms
