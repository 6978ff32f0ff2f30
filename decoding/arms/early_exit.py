"""Kind ``early_exit``: the target's own first layers draft (transformers' ``assistant_early_exit``;
a Llama-style decoder whose layers can be cut, checked at load)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..pricing import DEFAULT_DRAFT_TOKENS
from .base import ASSISTANT_KEYS, ArmKind, ModelsConfigError, parse_assistant, positive_int


class EarlyExit(ArmKind):
    name = "early_exit"
    label = "early-exit"
    keys = ("assistant_early_exit",) + ASSISTANT_KEYS
    own_output = True
    example = {"assistant_early_exit": 1, "num_assistant_tokens": 3}

    def parse(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        layer = positive_int(table, "assistant_early_exit", where)
        if layer is None:
            raise ModelsConfigError(f"{where}: kind 'early_exit' needs `assistant_early_exit` (the layer to exit at, >= 1)")
        return {"assistant_early_exit": layer, **parse_assistant(table, where)}

    def generate_kwargs(self, arm: Any) -> dict[str, Any]:
        return {"assistant_early_exit": arm.assistant_early_exit}

    def log_attrs(self, arm: Any) -> dict[str, Any]:
        return {"exit_layer": int(arm.assistant_early_exit)}

    def load(self, session: Any, arm: Any, loaded: dict[str, Any]) -> None:
        from ..loading import check_early_exit

        check_early_exit(session.target, arm.assistant_early_exit, arm.name)

    def n_params_m(self, session: Any, arm: Any) -> float | None:
        return session.target.n_params / 1e6 * arm.assistant_early_exit / session.target.n_layers

    def assisted_kwargs(self, session: Any, arm: Any) -> tuple[dict[str, Any], Any, Any]:
        return {}, session.target.model, None  # its drafting passes run the target module: counted there

    def drafter(self, session: Any, arm: Any) -> Any:
        from ..loading import first_layers
        from ..specloop import ModelDraft

        model, layers = session.target.model, arm.assistant_early_exit
        return ModelDraft(model, arm.n_draft_tokens or DEFAULT_DRAFT_TOKENS, layers=lambda: first_layers(model, layers))

    def greedy(self, session: Any, arm: Any, batch: Sequence[Sequence[int]], max_new_tokens: int | None) -> list[list[int]]:
        from ..loading import first_layers

        with first_layers(session.target.model, arm.assistant_early_exit):
            return session._greedy(session.target, batch, max_new_tokens)

    def step_seconds(self, session: Any, arm: Any, timer: Any) -> float:
        from ..loading import first_layers

        model = session.target.model
        with first_layers(model, arm.assistant_early_exit):
            return timer.step(model, model.config.get_text_config().vocab_size)
