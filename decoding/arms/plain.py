"""Kind ``none``: plain greedy decoding, the baseline every speed-up is measured against."""

from __future__ import annotations

from typing import Any

from .base import ArmKind


class Plain(ArmKind):
    name = "none"
    label = "plain"
    plain = True
    model_free = True

    def free_drafter(self, arm: Any, eos: Any) -> Any:
        from ..specloop import NoDraft

        return NoDraft()
