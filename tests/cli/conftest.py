"""Fixtures shared by the command-line tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def _checksum(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and bytes; locks and the validation cache
    left out); ``"absent"`` where nothing is there."""
    path = Path(path)
    if not path.exists():
        return "absent"
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock") and p.name != ".validated.json":  # locks and the validation cache
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="session")
def checksum():
    """``checksum(path)``: what a command must leave unchanged, as one string (a file's or a folder's bytes)."""
    return _checksum
