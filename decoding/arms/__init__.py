"""Arm kinds: one class per way of drafting, behind one protocol (``decoding.arms.base.ArmKind``).

``KINDS`` is the registry, a literal table in the order the models file's error messages list
the kinds. Adding a kind is one module here and one line below; the log contract names the kinds
a log may record (``logging_data.schema.ARM_KINDS``), and ``tests/decoding/test_arm_kinds.py``
runs every registered kind through the same contract.
"""

from __future__ import annotations

from typing import Any

from .base import ArmKind
from .datastore import Datastore
from .datastore_head import DatastoreHead
from .draft import Draft
from .early_exit import EarlyExit
from .head import Head
from .lookup_draft import LookupDraft
from .lookup_head import LookupHead
from .plain import Plain
from .prompt_lookup import PromptLookup

KINDS: dict[str, ArmKind] = {
    "none": Plain(),
    "draft": Draft(),
    "prompt_lookup": PromptLookup(),
    "early_exit": EarlyExit(),
    "head": Head(),
    "lookup_head": LookupHead(),
    "datastore": Datastore(),
    "datastore_head": DatastoreHead(),
    "lookup_draft": LookupDraft(),
}


def kind_of(arm: Any) -> ArmKind:
    """The registered kind of an arm (an ``ArmConfig``, a log's ``Arm``, or a kind name)."""
    name = arm if isinstance(arm, str) else arm.kind
    if name not in KINDS:
        from ..loading import ArmNotSupportedError

        label = "" if isinstance(arm, str) else f"arm {arm.name!r}: "
        raise ArmNotSupportedError(f"{label}kind {name!r} is not an arm kind decoding can run; kinds: {', '.join(KINDS)}")
    return KINDS[name]


def is_plain(kind: str) -> bool:
    """Whether a log's arm kind is plain decoding (a foreign log's ``unknown`` kind is not)."""
    return kind in KINDS and KINDS[kind].plain


def model_free_kinds() -> tuple[str, ...]:
    """The kinds that draft with no model: no drafting cost, counts that replay exactly."""
    return tuple(k for k, v in KINDS.items() if v.model_free)


__all__ = ["KINDS", "ArmKind", "kind_of", "is_plain", "model_free_kinds"]
