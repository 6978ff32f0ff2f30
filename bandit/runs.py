"""The run folder: one trained policy with everything needed to use it and to trust it.

```
RUN/
  config.json       policy name and settings, featurizer name and settings, the log's arms and
                    reward definition, feedback kind, split and policy_id trained on
  featurizer/       the fitted featurizer (logging_data.features.save_featurizer)
  model/            the policy's own artifact (its save(): arrays, safetensors, VW model, d3rlpy)
  metrics.json      training metrics: the policy's own, train seconds, featurizer cost per
                    prompt, and on full information the train-set value of the policy next to
                    the oracle, the best single arm and uniform
  fingerprint.json  the data it saw: log path, table, rows, schema version, reward definition,
                    sha256 of every Parquet part read and of all of them together
```

``train_run`` builds the folder in a hidden staging folder beside ``RUN`` and renames it into
place only when complete, so an interrupted training never leaves a half run. Learners with
many steps write checkpoints to a hidden sibling ``.RUN.checkpoints/`` (kept across
interruptions, tagged with a hash of the config and the data so that a changed config never
resumes from a stale checkpoint); running the same command again resumes from them, and they
are removed once the run is written.

``load_run(path)`` returns a ``Run``: ``probabilities(frame)`` / ``act(frame, rng)`` on a
frame of prompts (columns ``prompt`` and ``query_id``; ``domain`` optional) and ``choose``
for one prompt at decode time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from bandit.configs import config_from_json, config_to_json
from bandit.data import TrainingData
from logging_data.simulate import reward_matrix
from bandit.policy import policy_act, policy_probabilities
from logging_data import Arm, Log, LogMetadata, open_log, require_valid_log
from logging_data.features import get_featurizer, load_featurizer, save_featurizer, timed_transform
from logging_data.files import write_json_atomic
from logging_data.outputs import RUN, check_output, publish, staged

FILES = ("config.json", "metrics.json", "fingerprint.json")
FEEDBACKS = ("full", "bandit")
TRANSFORM_BATCH = 256


def _write_json(path: Path, obj: Any) -> None:
    write_json_atomic(path, obj)


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: not a complete run folder (missing {path.name}, {what})")
    return json.loads(path.read_text(encoding="utf-8"))


# -- the run ------------------------------------------------------------------------------------
@dataclass
class Run:
    """A trained policy with its featurizer, loaded from (or just written to) a run folder."""

    path: Path
    config: Any
    policy: Any
    featurizer: Any
    arms: tuple[Arm, ...]
    record: dict = field(default_factory=dict)  # config.json as written
    metrics: dict = field(default_factory=dict)
    fingerprint: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)

    def check_arms(self, arm_names: Sequence[str], where: str = "the log") -> None:
        """ValueError unless ``arm_names`` are the run's arms in the same order."""
        if tuple(arm_names) != self.arm_names:
            raise ValueError(f"run {self.path}: trained on arms {', '.join(self.arm_names)}; {where} has arms "
                             f"{', '.join(arm_names)} (same names in the same order are needed)")

    def check_log(self, metadata: Any, where: str = "the log") -> list[str]:
        """``check_arms`` against a log's metadata, and the warnings of using the run on that log
        (one: the run was trained under another reward definition). Every command that applies a
        run to a log calls this, so they refuse and warn alike."""
        self.check_arms(metadata.arm_names, where)
        log_reward = metadata.reward.to_json()
        if self.record.get("reward") != log_reward:
            return [f"{self.name} was trained under reward {self.record.get('reward')}; {where}'s reward is {log_reward}"]
        return []

    def features(self, prompts: Sequence[str]) -> np.ndarray:
        """The run's featurizer on ``prompts``: float32 (n, d)."""
        return self.featurizer.transform(list(prompts))

    def _frame(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame with columns query_id and prompt; got {type(frame).__name__}")
        missing = [c for c in ("query_id", "prompt") if c not in frame.columns]
        if missing:
            raise ValueError(f"the frame needs columns query_id and prompt; missing {', '.join(missing)} (has {', '.join(map(str, frame.columns))})")
        prompts = frame["prompt"].astype(object).tolist()
        bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
        if bad:
            raise ValueError(f"{len(bad)} prompt(s) are not text (first: row {bad[0]}, query_id={frame['query_id'].iloc[bad[0]]})")
        return frame["query_id"].astype(str).tolist(), prompts

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """float64 (n, n_arms) over ``arm_names`` for each row of ``frame`` (columns query_id, prompt)."""
        qids, prompts = self._frame(frame)
        return np.asarray(policy_probabilities(self.policy, self.features(prompts), qids), dtype=np.float64)

    def act(self, frame: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One arm per row: (actions int64 (n,), exact propensities float64 (n,))."""
        qids, prompts = self._frame(frame)
        return policy_act(self.policy, self.features(prompts), rng, qids)

    def choose(self, prompt: str, rng: np.random.Generator, query_id: str | None = None) -> tuple[str, float, float]:
        """(arm name, its propensity, seconds spent choosing: features + policy) for one prompt."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string; got {type(prompt).__name__}")
        start = time.perf_counter()
        x = self.features([prompt])
        actions, props = policy_act(self.policy, x, rng, None if query_id is None else [query_id])
        seconds = time.perf_counter() - start
        return self.arm_names[int(actions[0])], float(props[0]), seconds


def load_run(path: str | os.PathLike) -> Run:
    """Load the run folder ``path`` written by ``train_run``."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such run folder")
    record = _read_json(root / "config.json", "the resolved config")
    config = config_from_json({"policy": record["policy"], "settings": record["settings"]})
    arms = tuple(Arm.from_json(a) for a in record["arms"])
    featurizer = load_featurizer(root / "featurizer")
    policy = config.load_policy(root / "model", arms)
    metrics = _read_json(root / "metrics.json", "training metrics")
    fingerprint = _read_json(root / "fingerprint.json", "the data fingerprint")
    return Run(root, config, policy, featurizer, arms, record, metrics, fingerprint)


# -- reading the training data ------------------------------------------------------------------------
def _part_hashes(log: Log, table: str) -> list[dict]:
    out = []
    for part in log.parts(table):
        h = hashlib.sha256()
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out.append({"part": part.name, "bytes": part.stat().st_size, "sha256": h.hexdigest()})
    return out


def _select(frame: pd.DataFrame, split: str | None, table: str, log_path: Path) -> pd.DataFrame:
    if split is None:
        return frame
    present = sorted({str(s) for s in frame["split"].dropna().unique()})
    rows = frame["split"].astype(object) == split
    if not rows.any():
        raise ValueError(f"{log_path}: no {table} rows with split={split!r} (splits present: {', '.join(present) or 'none'}); "
                         f"choose another split, or split='all' to train on every row")
    return frame[rows.to_numpy()].reset_index(drop=True)


@dataclass(frozen=True)
class _Read:
    prompts: list[str]
    data_kwargs: dict
    fingerprint: dict


def _read_training_rows(log: Log, feedback: str, split: str | None, policy_id: str | None) -> _Read:
    meta: LogMetadata = log.metadata
    table = "outcomes" if feedback == "full" else "decisions"
    if not log.has(table):
        other = "decisions" if table == "outcomes" else "outcomes"
        hint = f"; it has {other}: use feedback={'bandit' if other == 'decisions' else 'full'}" if log.has(other) else ""
        raise ValueError(f"{log.root}: feedback={feedback!r} needs the {table} table, which this log does not have{hint}")
    frame = log.read(table)
    n_table = len(frame)
    frame = _select(frame, split, table, log.root)
    if feedback == "bandit":
        ids = sorted({str(p) for p in frame["policy_id"]})
        if policy_id is None and len(ids) > 1:
            raise ValueError(f"{log.root}: decisions from {len(ids)} logging policies ({', '.join(ids)}); choose one with policy_id")
        if policy_id is not None:
            if policy_id not in ids:
                raise ValueError(f"{log.root}: no decisions with policy_id={policy_id!r} (policy_ids: {', '.join(ids)})")
            frame = frame[frame["policy_id"].astype(str) == policy_id].reset_index(drop=True)
    queries = frame.drop_duplicates("query_id").set_index(frame.drop_duplicates("query_id")["query_id"].astype(str))
    if feedback == "full":
        qids, rewards = reward_matrix(frame, meta.arm_names)
        kwargs: dict[str, Any] = {"rewards": rewards}
    else:
        qids = frame["query_id"].astype(str).tolist()
        index = {a: i for i, a in enumerate(meta.arm_names)}
        kwargs = {"actions": np.array([index[str(a)] for a in frame["arm"]], dtype=np.int64),
                  "observed": frame["reward"].to_numpy(dtype=np.float64),
                  "propensities": frame["propensity"].to_numpy(dtype=np.float64)}
    prompts = [str(queries.at[q, "prompt"]) for q in qids]
    domains = tuple(None if pd.isna(queries.at[q, "domain"]) else str(queries.at[q, "domain"]) for q in qids)
    kwargs.update(query_ids=tuple(qids), domains=domains)
    parts = _part_hashes(log, table)
    overall = hashlib.sha256("".join(p["sha256"] for p in parts).encode()).hexdigest()
    fingerprint = {
        "log_path": str(log.root.resolve()), "table": table, "rows": len(frame), "rows_in_table": n_table,
        "n_prompts": len(qids), "split": split, "policy_id": policy_id, "schema_version": meta.schema_version,
        "reward": meta.reward.to_json(), "arms": list(meta.arm_names), "parts": parts, "sha256": overall,
    }
    return _Read(prompts, kwargs, fingerprint)


# -- training -------------------------------------------------------------------------------------------
def _progress(progress: bool, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not progress, leave=False)


def _featurize(featurizer: Any, prompts: list[str], progress: bool) -> tuple[np.ndarray, float]:
    blocks, seconds = [], 0.0
    if prompts:
        featurizer.transform(prompts[:1])  # warm-up (imports, lazy loading) is not a per-prompt cost
    with _progress(progress, len(prompts), "featurizing") as bar:
        for start in range(0, len(prompts), TRANSFORM_BATCH):
            batch = prompts[start:start + TRANSFORM_BATCH]
            x, per = timed_transform(featurizer, batch)
            blocks.append(np.asarray(x, dtype=np.float32))
            seconds += per * len(batch)
            bar.update(len(batch))
    return np.concatenate(blocks, axis=0), seconds / max(len(prompts), 1)


def _train_values(policy: Any, data: TrainingData) -> dict[str, Any]:
    """On full information: the mean reward of the policy, the oracle, each arm and uniform on the training rows."""
    r = data.rewards
    if not np.isfinite(r).all():
        return {"note": "some rewards are missing; train-set values not computed"}
    probs = policy_probabilities(policy, data.features, data.query_ids)
    per_arm = r.mean(axis=0)
    return {"policy": float((probs * r).sum(axis=1).mean()), "oracle": float(r.max(axis=1).mean()),
            "best_arm": data.arm_names[int(per_arm.argmax())], "best_arm_value": float(per_arm.max()),
            "uniform": float(r.mean())}


def _checkpoint_dir(out: Path, tag: str) -> Path:
    """The persistent checkpoint folder of ``out``; emptied when it belongs to another config or data."""
    ckpt = out.parent / f".{out.name}.checkpoints"
    stamp = ckpt / "_resume.json"
    if ckpt.exists():
        old = json.loads(stamp.read_text(encoding="utf-8")).get("tag") if stamp.is_file() else None
        if old != tag:
            shutil.rmtree(ckpt)
    ckpt.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"tag": tag}) + "\n", encoding="utf-8")
    return ckpt


def train_run(log_path: str | os.PathLike, config: Any, out_dir: str | os.PathLike, *, feedback: str = "full",
              split: str | None = "train", policy_id: str | None = None,
              featurizer_settings: Mapping[str, Any] | None = None, overwrite: bool = False,
              progress: bool = True, validate: bool = True, inputs: Sequence[tuple[str, Any]] = ()) -> Run:
    """Train ``config``'s policy on the log at ``log_path`` and write the run folder ``out_dir``.

    - ``feedback``: ``"full"`` trains on the outcomes table (every arm's reward per prompt),
      ``"bandit"`` on the decisions table (the logged arm, its reward and propensity); with
      several logging policies in it, ``policy_id`` picks one.
    - ``split``: the rows of that split only (``"train"`` by default); ``None`` or ``"all"``
      for every row. Hindsight policies (the oracle) always take every row: they memorise
      outcomes, they do not generalise.
    - ``featurizer_settings``: keyword settings for the featurizer named by ``config.featurizer``.
    - ``overwrite``: replace an existing run folder at ``out_dir`` (only once the new one is
      complete); never a log, an input or a folder holding anything a run does not
      (``logging_data.outputs.check_output``).
    - ``inputs``: (label, path) of other files the caller read (a ``--config`` file): the run is
      written neither onto nor around them.
    - ``validate``: check the log against its contract first (``require_valid_log``); a caller
      that trains many runs on one log checks it once and passes False.

    Returns the ``Run`` as written. Progress goes to stderr (tqdm) when ``progress``.
    """
    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback must be one of {', '.join(FEEDBACKS)}; got {feedback!r}")
    split = None if split == "all" else split
    if split is not None and split not in ("train", "validation", "test"):
        raise ValueError(f"split must be train, validation, test or all; got {split!r}")
    accepted = tuple(getattr(type(config), "feedback", FEEDBACKS))
    if feedback not in accepted:
        raise ValueError(f"policy {type(config).name!r} trains on {' or '.join(accepted)} feedback only; got feedback={feedback!r}")
    hindsight = bool(getattr(type(config), "hindsight", False))
    out = check_output(out_dir, RUN, inputs=[("LOG", log_path), *inputs], if_exists="overwrite", overwrite=overwrite)
    if validate:
        require_valid_log(log_path)
    log = open_log(log_path)
    meta = log.metadata
    settings = dict(featurizer_settings or {})
    featurizer = get_featurizer(config.featurizer, **settings)  # unknown settings fail before any work
    policy = config.create(meta.arms)  # so do settings that do not fit the log's arms

    with _progress(progress, 5, "training") as stages:
        stages.set_postfix_str("reading log")
        read = _read_training_rows(log, feedback, None if hindsight else split, policy_id)
        stages.update()
        stages.set_postfix_str(f"fitting featurizer {config.featurizer}")
        start = time.perf_counter()
        featurizer.fit(read.prompts)
        featurizer_fit_s = time.perf_counter() - start
        stages.update()
        x, per_prompt = _featurize(featurizer, read.prompts, progress)
        data = TrainingData(features=x, arm_names=meta.arm_names, **read.data_kwargs)
        stages.update()

        record = {**config_to_json(config),
                  "featurizer": {"name": config.featurizer, "settings": settings},
                  "arms": [a.to_json() for a in meta.arms], "reward": meta.reward.to_json(),
                  "feedback": feedback, "split": None if hindsight else split, "policy_id": policy_id}
        tag = hashlib.sha256(json.dumps([record, read.fingerprint["sha256"], read.fingerprint["rows"]], sort_keys=True,
                                        default=str).encode()).hexdigest()
        ckpt = _checkpoint_dir(out, tag)
        stages.set_postfix_str(f"fitting {type(config).name}")
        start = time.perf_counter()
        policy.fit(data, checkpoint_dir=ckpt)
        fit_s = time.perf_counter() - start
        stages.update()

        metrics = {
            "policy": dict(getattr(policy, "training_metrics_", {}) or {}),
            "train_seconds": fit_s,
            "n_train_prompts": data.n,
            "featurizer": {"name": config.featurizer, "dim": int(x.shape[1]), "fit_seconds": featurizer_fit_s,
                           "seconds_per_prompt": per_prompt},
        }
        if data.is_full_information:
            metrics["train_values"] = _train_values(policy, data)

        stages.set_postfix_str("writing run")
        check_output(out, RUN, inputs=[("LOG", log_path), *inputs], if_exists="overwrite", overwrite=overwrite)
        with staged(out) as staging:  # written whole beside out, then renamed into place
            _write_json(staging / "config.json", record)
            save_featurizer(featurizer, staging / "featurizer", settings)
            (staging / "model").mkdir()
            policy.save(staging / "model")
            _write_json(staging / "metrics.json", metrics)
            _write_json(staging / "fingerprint.json", read.fingerprint)
            publish(staging, out, replace=overwrite)
        shutil.rmtree(ckpt, ignore_errors=True)
        stages.update()
    return Run(out, config, policy, featurizer, meta.arms, record, metrics, read.fingerprint)
