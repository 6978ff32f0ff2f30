"""Helpers for the log-contract tests: small valid outcomes/decisions frames and a log to append to."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from logging_data import Arm, LogMetadata, RewardDefinition, create_log

ARMS = (Arm("none", "none", 0.0), Arm("tiny", "draft", 0.05, {"params_m": 1}), Arm("small", "draft", 0.2, {"params_m": 5}))
DOMAINS = ("code", "translate", None)
OUTCOME_FIELDS = ["query_id", "prompt", "domain", "split", "arm", "reward", "align_accept", "n_new_tokens", "lossless"]
DECISION_FIELDS = ["query_id", "prompt", "domain", "split", "arm", "propensity", "reward", "policy_id", "decided_at"]


def make_metadata(arms: tuple[Arm, ...] = ARMS, alpha: float = 0.1) -> LogMetadata:
    return LogMetadata(arms=arms, reward=RewardDefinition("alignment", "align_accept", alpha), extra={"made_by": "tests"})


def make_outcomes(n_queries: int = 4, arms: tuple[str, ...] = tuple(a.name for a in ARMS), start: int = 0, seed: int = 0) -> pd.DataFrame:
    """A valid outcomes frame: every arm for queries q{start}..q{start+n_queries-1}."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(start, start + n_queries):
        for arm in arms:
            align = float(rng.uniform())
            rows.append(
                {
                    "query_id": f"q{i}",
                    "prompt": f"prompt number {i} ✓",
                    "domain": DOMAINS[i % len(DOMAINS)],
                    "split": ("train", "validation", "test")[i % 3],
                    "arm": arm,
                    "reward": 0.0 if arm == "none" else align - 0.1 * 0.05,
                    "align_accept": align,
                    "n_new_tokens": int(rng.integers(1, 64)),
                    "lossless": True,
                }
            )
    return pd.DataFrame(rows, columns=OUTCOME_FIELDS)


def make_decisions(n_queries: int = 4, arms: tuple[str, ...] = tuple(a.name for a in ARMS), start: int = 0, policy_id: str = "uniform", seed: int = 0) -> pd.DataFrame:
    """A valid decisions frame for the same queries as ``make_outcomes`` (uniform logging policy)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(start, start + n_queries):
        rows.append(
            {
                "query_id": f"q{i}",
                "prompt": f"prompt number {i} ✓",
                "domain": DOMAINS[i % len(DOMAINS)],
                "split": ("train", "validation", "test")[i % 3],
                "arm": arms[int(rng.integers(len(arms)))],
                "propensity": 1.0 / len(arms),
                "reward": float(rng.uniform()),
                "policy_id": policy_id,
                "decided_at": pd.Timestamp("2024-05-01T12:00:00Z") + pd.Timedelta(seconds=i),
            }
        )
    return pd.DataFrame(rows, columns=DECISION_FIELDS)


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest), hidden files included."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


class Helpers:
    """The helpers above, handed to tests by the ``helpers`` fixture (conftest is not importable
    under --import-mode=importlib)."""

    ARMS = ARMS
    make_metadata = staticmethod(make_metadata)
    make_outcomes = staticmethod(make_outcomes)
    make_decisions = staticmethod(make_decisions)
    hash_tree = staticmethod(hash_tree)


@pytest.fixture(scope="session")
def helpers() -> type[Helpers]:
    return Helpers


@pytest.fixture
def filled_log(tmp_path):
    """A log with two outcomes parts (q0-q3, q4-q5) and one decisions part (q0-q3)."""
    log = create_log(tmp_path / "log", make_metadata())
    log.append("outcomes", make_outcomes(4))
    log.append("outcomes", make_outcomes(2, start=4, seed=1))
    log.append("decisions", make_decisions(4))
    return log
