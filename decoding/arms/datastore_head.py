"""Kind ``datastore_head``: a domain's retrieval datastore where it has a continuation, its drafting head elsewhere.

A store (kind ``datastore``, ``decoding.datastore``) proposes only where the end of the context
matches what the target wrote before in the domain, at no model cost; a head (kind ``head``)
proposes everywhere at a small step cost. Each round this arm proposes the store's tokens (its
gates applied) when there are any, else the head's ``num_assistant_tokens`` from the target's
hidden state. Its draft calls are the head's steps (a store lookup is host work of microseconds,
not counted). Like ``head``, it decodes through the project's loop; output stays plain greedy's::

    [[arms]]
    name = "translate-store-head"
    kind = "datastore_head"
    head = "heads/translate"
    num_assistant_tokens = 2
    assistant_confidence_threshold = 0.4
    datastore = "stores/translate"
    datastore_tokens = 4
    min_count = 3
    min_fraction = 0.5
    allow_other_target = true   # optional: for both the head and the store (kinds head, datastore)
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import draft_tokens
from .datastore import DEFAULT_STORE_TOKENS, Datastore
from .head import Head
from .lookup_head import LookupThenHead

_STORE = Datastore()


class DatastoreHead(Head):
    name = "datastore_head"
    label = "datastore-then-head"
    keys = Head.keys + ("datastore", "datastore_tokens", "min_count", "min_fraction")
    example = {"head": "head", "num_assistant_tokens": 2, "datastore": "datastore", "datastore_tokens": 3, "min_count": 2}

    def parse(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        store = _STORE.parse({k: v for k, v in table.items() if k in ("datastore", "min_count", "min_fraction")}, where)
        store.pop("num_assistant_tokens")
        store.pop("allow_other_target")  # the head's parse reads it: one key for both files
        return {**super().parse(table, where), **store, "datastore_tokens": draft_tokens(table, "datastore_tokens", where)}

    def log_attrs(self, arm: Any) -> dict[str, Any]:
        return {**super().log_attrs(arm), **_STORE.log_attrs(arm), "datastore_tokens": self._store_tokens(arm)}

    def _store_tokens(self, arm: Any) -> int:
        return arm.option("datastore_tokens") or DEFAULT_STORE_TOKENS

    def n_draft_tokens(self, arm: Any) -> int | None:
        return max(self._store_tokens(arm), super().n_draft_tokens(arm))

    def load(self, session: Any, arm: Any, loaded: dict[str, Any]) -> None:
        super().load(session, arm, loaded)
        head = session.arm_state[arm.name]
        _STORE.load(session, arm, loaded)  # the store lands under the arm's name: moved to its own key
        session.arm_state[self.store_key(arm)] = session.arm_state[arm.name]
        session.arm_state[arm.name] = head

    @staticmethod
    def store_key(arm: Any) -> str:
        return f"{arm.name}:datastore"

    def drafter(self, session: Any, arm: Any) -> Any:
        from ..datastore import DatastoreDraft
        from ..heads import HeadDraft

        store = DatastoreDraft(session.arm_state[self.store_key(arm)], self._store_tokens(arm), arm.option("min_count") or 1,
                               arm.option("min_fraction") or 0.0)
        return LookupThenHead(store, HeadDraft(session.arm_state[arm.name], session.target.model, super().n_draft_tokens(arm),
                                               arm.assistant_confidence_threshold or 0.0))
