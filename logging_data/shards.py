"""A deterministic partition of prompt keys into shards, so N writers can build one log.

``shard_of(query_id, n)`` is a stable hash of the key (BLAKE2b, not Python's salted ``hash``), so
every process, machine and Python version puts a prompt in the same shard: N processes that each
take ``Shard(i, n)`` for ``i = 0 .. n-1`` write disjoint sets of keys whose union is the whole
prompt set, and a restarted shard finds exactly its own keys again (resume by key).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or isinstance(self.count, bool) or not isinstance(self.index, int) \
                or not isinstance(self.count, int):
            raise ValueError(f"a shard is two integers I/N; got {self.index!r}/{self.count!r}")
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"a shard I/N needs N >= 1 and 0 <= I < N; got {self.index}/{self.count}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, query_id: str) -> bool:
        return shard_of(query_id, self.count) == self.index

    def mask(self, query_ids: Iterable[str]) -> np.ndarray:
        """A boolean mask: which of ``query_ids`` belong to this shard."""
        return np.array([shard_of(str(q), self.count) == self.index for q in query_ids], dtype=bool)


def shard_of(query_id: str, count: int) -> int:
    """The shard (0 .. count-1) of ``query_id``: a stable hash of its UTF-8 bytes, modulo ``count``."""
    if count < 1:
        raise ValueError(f"the number of shards must be >= 1; got {count}")
    digest = hashlib.blake2b(str(query_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(spec: str) -> Shard:
    """``"I/N"`` → ``Shard(I, N)``; a clear error for anything else."""
    m = _SPEC.match(str(spec))
    if not m:
        raise ValueError(f"a shard is written I/N (shard I of N, 0 <= I < N, e.g. 0/4); got {spec!r}")
    return Shard(int(m.group(1)), int(m.group(2)))
