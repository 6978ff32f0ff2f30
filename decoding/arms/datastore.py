"""Kind ``datastore``: a retrieval datastore of what the target writes in one domain (``decoding.datastore``).

It drafts with no model: each round it matches the end of the context in the store and proposes
the continuation the target most often wrote after it there (REST-style retrieval, task-aligned:
one store per domain, built from the target's greedy continuations of the domain's training
prompts by ``examples/datastores.py``). A lookup is host work only, so its drafting step is
calibrated like any other arm's (tens of microseconds), and its counts replay exactly from the
target's greedy output (``decoding.datastore.replay_datastore``). It decodes through the project's
loop; output stays plain greedy's token for token::

    [[arms]]
    name = "translate-store"
    kind = "datastore"
    datastore = "stores/translate"   # relative to the models file's folder
    num_assistant_tokens = 4         # tokens proposed at most per round (default 4)
    min_count = 3                    # optional: stop at a token the store saw fewer than 3 times there
    min_fraction = 0.5               # optional: ... or after less than half of the matching places
    allow_other_target = true        # optional: load a store built for another target with the same tokenizer

A store records the target whose outputs it holds (``made_for``, ``decoding.artifacts``); loading
it for another is refused by name: another tokenizer always (its ids would mean other words),
another target with the same tokenizer unless the arm sets ``allow_other_target = true``. A store
written before targets were recorded loads with a warning. A corrupt file, one holding pickled
objects, or token ids the target does not have are refused naming the arm and the file.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .base import ArmKind, ModelsConfigError, artifact_errors, draft_tokens, positive_int, typed

#: tokens a store proposes per round when the arm sets none
DEFAULT_STORE_TOKENS = 4


class Datastore(ArmKind):
    name = "datastore"
    label = "retrieval datastore"
    keys = ("datastore", "num_assistant_tokens", "min_count", "min_fraction", "allow_other_target")
    generate = False
    example = {"datastore": "datastore", "num_assistant_tokens": 3}

    def parse(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        path = typed(table, "datastore", str, where)
        if not path or not path.strip():
            raise ModelsConfigError(f"{where}: kind 'datastore' needs `datastore` (a folder holding datastore.json and datastore.npz)")
        fraction = typed(table, "min_fraction", (int, float), where)
        if fraction is not None and not (math.isfinite(fraction) and 0 <= fraction <= 1):
            raise ModelsConfigError(f"{where}: `min_fraction` must be in [0, 1]; got {fraction}")
        return {"datastore": path, "num_assistant_tokens": draft_tokens(table, "num_assistant_tokens", where),
                "min_count": positive_int(table, "min_count", where),
                "min_fraction": None if fraction is None else float(fraction),
                "allow_other_target": typed(table, "allow_other_target", bool, where, False)}

    def log_attrs(self, arm: Any) -> dict[str, Any]:
        return {k: arm.option(k) for k in ("min_count", "min_fraction") if arm.option(k) is not None}

    def n_draft_tokens(self, arm: Any) -> int | None:
        return arm.num_assistant_tokens or DEFAULT_STORE_TOKENS

    def load(self, session: Any, arm: Any, loaded: dict[str, Any]) -> None:
        from ..datastore import check_datastore_target, load_datastore, read_datastore_record

        path = session.config.resolve(arm.option("datastore"))
        target, allow = session.target_identity, bool(arm.option("allow_other_target"))
        with artifact_errors(arm, "datastore", path):
            if path in loaded:  # another arm loaded it (for its own target check): check it for this arm's
                meta = read_datastore_record(path)
                check_datastore_target(path, meta, target, allow)
                if loaded[path].max_token is not None:
                    check_datastore_target(path, meta, target, allow, max_token=loaded[path].max_token)
            else:
                loaded[path] = load_datastore(path, target, allow)
        session.arm_state[arm.name] = loaded[path]

    def n_params_m(self, session: Any, arm: Any) -> float | None:
        # a store's "parameters" are the tokens it holds (millions): what it drafts from
        return session.arm_state[arm.name].n_tokens / 1e6

    def drafter(self, session: Any, arm: Any) -> Any:
        from ..datastore import DatastoreDraft

        return DatastoreDraft(session.arm_state[arm.name], self.n_draft_tokens(arm), arm.option("min_count") or 1,
                              arm.option("min_fraction") or 0.0)

    def step_seconds(self, session: Any, arm: Any, timer: Any) -> float:
        # one lookup at the end of a context of the calibration's length (the store's own first sequence when it has one)
        drafter = self.drafter(session, arm)
        seq = drafter.store.sequences[0] if drafter.store.sequences else [0]
        context = (list(seq) * (timer.context_len // max(len(seq), 1) + 1))[:timer.context_len]
        return timer.call(lambda: drafter.propose(context))
