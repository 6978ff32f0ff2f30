"""Kind ``prompt_lookup``: candidates copied from the context after a matching n-gram
(transformers' ``prompt_lookup_num_tokens``); no model, so its counts replay exactly from the
target's greedy output (its drafter's rounds replayed, as ``decoding.alignment.simulate_prompt_lookup`` does)."""

from __future__ import annotations

from typing import Any, Mapping

from .base import ArmKind, draft_tokens, positive_int


class PromptLookup(ArmKind):
    name = "prompt_lookup"
    label = "prompt-lookup"
    keys = ("prompt_lookup_num_tokens", "max_matching_ngram_size")
    model_free = True
    example = {"prompt_lookup_num_tokens": 3}

    def parse(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        return {"prompt_lookup_num_tokens": draft_tokens(table, "prompt_lookup_num_tokens", where, 10),
                "max_matching_ngram_size": positive_int(table, "max_matching_ngram_size", where)}

    def n_draft_tokens(self, arm: Any) -> int | None:
        return arm.prompt_lookup_num_tokens

    def generate_kwargs(self, arm: Any) -> dict[str, Any]:
        kw: dict[str, Any] = {"prompt_lookup_num_tokens": arm.prompt_lookup_num_tokens}
        if arm.max_matching_ngram_size is not None:
            kw["max_matching_ngram_size"] = arm.max_matching_ngram_size
        return kw

    def free_drafter(self, arm: Any, eos: Any) -> Any:
        from ..specloop import PromptLookup as Drafter

        return Drafter(arm.prompt_lookup_num_tokens, arm.max_matching_ngram_size or 2, eos)
