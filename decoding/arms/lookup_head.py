"""Kind ``lookup_head``: prompt lookup where it finds a match, a drafting head where it does not.

Prompt lookup costs nothing but proposes only where the output copies the context; a head
(``decoding.heads``, kind ``head``) proposes everywhere at a small step cost. Each round this arm
proposes prompt lookup's candidates when there are any, else the head's ``num_assistant_tokens``
tokens from the target's hidden state, so rounds without a match still draft. Like ``head``, it
decodes through the project's loop; output stays plain greedy's token for token::

    [[arms]]
    name = "code-lookup-head"
    kind = "lookup_head"
    head = "heads/code"
    prompt_lookup_num_tokens = 10
    max_matching_ngram_size = 3
    num_assistant_tokens = 3
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .base import draft_tokens, positive_int
from .head import Head


class LookupThenHead:
    """The ``decoding.specloop`` drafter: ``lookup``'s candidates, else ``head``'s (``specloop.LookupThen``,
    which sees every round's state)."""

    def __new__(cls, lookup: Any, head: Any) -> Any:
        from ..specloop import LookupThen

        return LookupThen(lookup, head)


class LookupHead(Head):
    name = "lookup_head"
    label = "lookup-then-head"
    keys = Head.keys + ("prompt_lookup_num_tokens", "max_matching_ngram_size")
    example = {"head": "head", "num_assistant_tokens": 2, "prompt_lookup_num_tokens": 3}

    def parse(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        return {**super().parse(table, where), "prompt_lookup_num_tokens": draft_tokens(table, "prompt_lookup_num_tokens", where, 10),
                "max_matching_ngram_size": positive_int(table, "max_matching_ngram_size", where)}

    def n_draft_tokens(self, arm: Any) -> int | None:
        return max(arm.prompt_lookup_num_tokens, super().n_draft_tokens(arm))

    def drafter(self, session: Any, arm: Any) -> Any:
        from ..heads import HeadDraft
        from ..specloop import PromptLookup

        lookup = PromptLookup(arm.prompt_lookup_num_tokens, arm.max_matching_ngram_size or 2, session.eos_ids)
        return LookupThenHead(lookup, HeadDraft(session.arm_state[arm.name], session.target.model, super().n_draft_tokens(arm),
                                                arm.assistant_confidence_threshold or 0.0))
