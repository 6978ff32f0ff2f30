"""Kind ``none``: plain greedy decoding, the baseline every speed-up is measured against."""

from __future__ import annotations

from typing import Any, Sequence

from .base import ArmKind


class Plain(ArmKind):
    name = "none"
    label = "plain"
    plain = True
    model_free = True

    def drafter(self, session: Any, arm: Any) -> Any:
        from ..specloop import NoDraft

        return NoDraft()

    def replay(self, arm: Any, ids: Sequence[int], target: Sequence[int], max_new_tokens: int, eos: Any) -> Any:
        from ..alignment import Verification

        return Verification(proposed=0, accepted=0, target_calls=len(target))
