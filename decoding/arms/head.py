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
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import ArmKind, ModelsConfigError, confidence_threshold, positive_int, typed

#: tokens a head drafts per round when the arm sets none (a head's acceptance falls fast with depth)
DEFAULT_HEAD_TOKENS = 3


class Head(ArmKind):
    name = "head"
    label = "hidden-state head"
    keys = ("head", "num_assistant_tokens", "assistant_confidence_threshold")
    generate = False
    example = {"head": "head", "num_assistant_tokens": 2}

    def parse(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        path = typed(table, "head", str, where)
        if not path or not path.strip():
            raise ModelsConfigError(f"{where}: kind 'head' needs `head` (a folder holding head.json and head.safetensors)")
        return {"head": path, "num_assistant_tokens": positive_int(table, "num_assistant_tokens", where),
                "assistant_confidence_threshold": confidence_threshold(table, where)}

    def log_attrs(self, arm: Any) -> dict[str, Any]:
        return {"confidence": arm.assistant_confidence_threshold} if arm.assistant_confidence_threshold else {}

    def n_draft_tokens(self, arm: Any) -> int | None:
        return arm.num_assistant_tokens or DEFAULT_HEAD_TOKENS

    def load(self, session: Any, arm: Any, loaded: dict[str, Any]) -> None:
        from ..heads import load_head
        from ..loading import ArmNotSupportedError, ModelLoadError

        path = session.config.resolve(arm.option("head"))
        if path not in loaded:
            try:
                loaded[path] = load_head(path)
            except (FileNotFoundError, KeyError, ValueError) as exc:
                raise ModelLoadError(f"arm {arm.name!r}: cannot load the head at {path}: {exc}") from None
        head = loaded[path]
        config = session.target.model.config.get_text_config()
        vocab = head.vocab.tolist()
        if head.hidden != config.hidden_size or not vocab or max(vocab) >= config.vocab_size or min(vocab) < 0:
            raise ArmNotSupportedError(
                f"arm {arm.name!r}: the head at {path} was trained for hidden size {head.hidden} over token ids up to "
                f"{max(vocab) if vocab else 'none'}; the target {session.target.spec} has hidden size {config.hidden_size} "
                f"and {config.vocab_size} tokens (train a head on this target)")
        session.arm_state[arm.name] = head.to(session.target.model.device)

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
