"""Kind ``lookup_draft``: prompt lookup where it finds a match, a draft model where it does not.

Prompt lookup costs nothing but proposes only where the output copies the context; a draft model
proposes everywhere at the price of its own steps. Each round this arm proposes prompt lookup's
candidates when there are any, else the draft's ``num_assistant_tokens`` greedy tokens, so the
draft runs only in rounds lookup cannot fill. It decodes through the project's loop
(``specloop.LookupThen`` around ``specloop.ModelDraft``), output plain greedy's token for token,
and its counts replay exactly from one forward pass of the draft (``decoding.draft_replay``)::

    [[arms]]
    name = "lookup-draft"
    kind = "lookup_draft"
    draft = "packaged:qwen2.5-coder-0.5b"
    prompt_lookup_num_tokens = 5
    max_matching_ngram_size = 3
    num_assistant_tokens = 3
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import ModelsConfigError, draft_tokens, positive_int, typed
from .draft import Draft

#: draft tokens a round when the arm sets none (the draft's acceptance falls with depth; 3 paid best on the Qwen pair)
DEFAULT_HYBRID_DRAFT_TOKENS = 3


class LookupDraft(Draft):
    name = "lookup_draft"
    label = "lookup-then-draft"
    keys = ("draft", "num_assistant_tokens", "prompt_lookup_num_tokens", "max_matching_ngram_size")
    generate = False
    example = {"draft": "draft", "num_assistant_tokens": 2, "prompt_lookup_num_tokens": 3}

    def parse(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        draft = typed(table, "draft", str, where)
        if not draft or not draft.strip():
            raise ModelsConfigError(f"{where}: kind 'lookup_draft' needs `draft` (a local HF directory, a .gguf file or "
                                    f"packaged:NAME) with the target's tokenizer")
        return {"draft": draft, "num_assistant_tokens": draft_tokens(table, "num_assistant_tokens", where, DEFAULT_HYBRID_DRAFT_TOKENS),
                "prompt_lookup_num_tokens": draft_tokens(table, "prompt_lookup_num_tokens", where, 10),
                "max_matching_ngram_size": positive_int(table, "max_matching_ngram_size", where)}

    def n_draft_tokens(self, arm: Any) -> int | None:
        return max(arm.prompt_lookup_num_tokens, arm.num_assistant_tokens)

    def log_attrs(self, arm: Any) -> dict[str, Any]:
        return {"lookup_tokens": arm.prompt_lookup_num_tokens, "ngram": arm.max_matching_ngram_size or 2}

    def looped(self, arm: Any) -> bool:
        return True

    def _lookup(self, session: Any, arm: Any) -> Any:
        from ..specloop import PromptLookup

        return PromptLookup(arm.prompt_lookup_num_tokens, arm.max_matching_ngram_size or 2, session.eos_ids)

    def drafter(self, session: Any, arm: Any) -> Any:
        from ..specloop import LookupThen

        return LookupThen(self._lookup(session, arm), super().drafter(session, arm))

    def replay_counts(self, session: Any, arm: Any, ids: Any, target: Any, max_new_tokens: int) -> Any:
        from ..draft_replay import ChainReplay, replay_counts
        from ..specloop import LookupThen

        chain = ChainReplay(self._k(arm), len(ids), target, self.next_tokens(session, arm, ids, target))
        return replay_counts(LookupThen(self._lookup(session, arm), chain), ids, target, max_new_tokens)
