"""Kind ``head``: a drafting head on the target's own hidden states (EAGLE-style, ``decoding.heads``),
over a reduced vocabulary. It needs no second model or cache: each round it drafts from the
target's hidden state of the last token it chose. transformers' ``generate()`` cannot feed it
that state, so it decodes through the project's loop (``decoding.specloop``); output stays plain
greedy's token for token. Train one with ``examples/heads.py`` (or ``decoding.heads.train_head``
and ``save_head``); the arm names its folder (``head.json`` + ``head.safetensors``)::

    [[arms]]
    name = "code-head"
    kind = "head"
    head = "heads/code"        # relative to the models file's folder
    num_assistant_tokens = 3   # tokens drafted per round (default 3)
    assistant_confidence_threshold = 0.4   # optional: stop a round at a token the head gives < 0.4
    allow_other_target = true  # optional: load a head made for another target with the same tokenizer

A head records the target it was trained for (``made_for``, ``decoding.artifacts``); loading it
for another is refused by name: another tokenizer or hidden size always, another target with
the same tokenizer unless the arm sets ``allow_other_target = true`` (the same model moved, or a
sibling it should draft for: output stays exact, only acceptance may fall). A head written before
targets were recorded loads with a warning. A corrupt or mis-shaped file is refused naming the
arm and the file, before anything is allocated.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import ArmKind, ModelsConfigError, artifact_errors, confidence_threshold, draft_tokens, typed

#: tokens a head drafts per round when the arm sets none (a head's acceptance falls fast with depth)
DEFAULT_HEAD_TOKENS = 3


class Head(ArmKind):
    name = "head"
    label = "hidden-state head"
    keys = ("head", "num_assistant_tokens", "assistant_confidence_threshold", "allow_other_target")
    generate = False
    example = {"head": "head", "num_assistant_tokens": 2}

    def parse(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        path = typed(table, "head", str, where)
        if not path or not path.strip():
            raise ModelsConfigError(f"{where}: kind 'head' needs `head` (a folder holding head.json and head.safetensors)")
        return {"head": path, "num_assistant_tokens": draft_tokens(table, "num_assistant_tokens", where),
                "assistant_confidence_threshold": confidence_threshold(table, where),
                "allow_other_target": typed(table, "allow_other_target", bool, where, False)}

    def log_attrs(self, arm: Any) -> dict[str, Any]:
        return {"confidence": arm.assistant_confidence_threshold} if arm.assistant_confidence_threshold else {}

    def n_draft_tokens(self, arm: Any) -> int | None:
        return arm.num_assistant_tokens or DEFAULT_HEAD_TOKENS

    def load(self, session: Any, arm: Any, loaded: dict[str, Any]) -> None:
        from ..heads import check_head_target, load_head, read_head_record

        path = session.config.resolve(arm.option("head"))
        target, allow = session.target_identity, bool(arm.option("allow_other_target"))
        with artifact_errors(arm, "head", path):
            if path in loaded:  # another arm loaded it (for its own target check): check it for this arm's
                check_head_target(path, read_head_record(path), target, allow)
            else:
                loaded[path] = load_head(path, target, allow)
        session.arm_state[arm.name] = loaded[path].to(session.target.model.device)

    def n_params_m(self, session: Any, arm: Any) -> float | None:
        return sum(p.numel() for p in session.arm_state[arm.name].parameters()) / 1e6

    def drafter(self, session: Any, arm: Any) -> Any:
        from ..heads import HeadDraft

        return HeadDraft(session.arm_state[arm.name], session.target.model, self.n_draft_tokens(arm),
                         arm.assistant_confidence_threshold or 0.0)

    def step_seconds(self, session: Any, arm: Any, timer: Any) -> float:
        import torch

        from ..heads import HeadDraft

        # one drafted token: one head step (the embedding, the head, the reduced output layer; its softmax when gated)
        drafter = HeadDraft(session.arm_state[arm.name], session.target.model, 1, arm.assistant_confidence_threshold or 0.0)
        hidden = torch.zeros(session.arm_state[arm.name].hidden, device=session.target.model.device)

        def step() -> None:
            drafter.accepted([0], hidden)
            drafter.propose([0])

        return timer.call(step)
