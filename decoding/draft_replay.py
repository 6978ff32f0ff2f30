"""Exact counts of a draft model's arms from one forward pass of the draft, not from assisted decoding.

Under greedy decoding a draft model's proposal in a round of the project's loop
(``specloop.ModelDraft``) is its own greedy chain of ``k`` tokens from the context so far, and the
context is always the prompt plus a prefix of the target's greedy output. Only the chain's prefix
that equals the target's next tokens is accepted, and while the chain agrees with the target the
context it extends *is* the target's output. So the accepted length of every round needs the
draft's next-token argmax after ``prompt + target[:j]`` for every j, and nothing else: one causal
forward pass of the draft over ``prompt + target`` gives all of them (``next_tokens``). The chain's
tokens after its first disagreement are rejected whatever they are, so the replay proposes
``NO_TOKEN`` there (it equals no token): the counts (target calls, drafted, accepted and draft
calls, ``k`` a round) are those of the loop, which makes ``k`` draft calls each round.

Where the replay can differ from the live loop: the live draft runs on a KV cache, token by token,
and the pass here runs over the whole sequence at once, so the logits differ in float rounding;
a near-tie between the draft's two best tokens can then flip. BENCHMARKS.md reports how often this
happened on the real pair. transformers' ``generate()`` with an ``assistant_model`` does not replay
this way: by default it stops a round early below a confidence threshold that it re-fits on past
rounds (``assistant_confidence_threshold``), so draft arms replay only when they decode through the
project's loop (``loop = true`` on a ``draft`` arm; ``lookup_draft`` always does).
"""

from __future__ import annotations

from typing import Any, Sequence

#: a proposed token that equals no real token: the rejected tail of a chain that left the target's output
NO_TOKEN = -1


def next_tokens(model: Any, prompt: Sequence[int], target: Sequence[int]) -> list[int]:
    """``d[j]``: ``model``'s greedy next token after ``prompt + target[:j]``, for j = 0..len(target)
    (len(target) + 1 tokens), from one forward pass without a cache."""
    import torch

    ids = [int(t) for t in prompt] + [int(t) for t in target]
    if not prompt:
        raise ValueError("next_tokens: the prompt is empty")
    x = torch.tensor([ids], dtype=torch.long, device=model.device)
    with torch.no_grad():
        out = model(input_ids=x, use_cache=False, logits_to_keep=len(target) + 1)
    return out.logits[0, -(len(target) + 1):].argmax(-1).tolist()


class ChainReplay:
    """The ``ModelDraft`` drafter of one prompt, replayed from ``next_tokens``: same proposals up to
    their first token off the target's output, ``NO_TOKEN`` after it, and ``k`` draft calls a round."""

    needs_hidden = False

    def __init__(self, k: int, prompt_len: int, target: Sequence[int], nexts: Sequence[int]) -> None:
        if k < 1:
            raise ValueError(f"a drafting model needs k >= 1 tokens per round; got {k}")
        if len(nexts) != len(target) + 1:
            raise ValueError(f"ChainReplay needs len(target) + 1 next tokens; got {len(nexts)} for {len(target)}")
        self.k, self.P = int(k), int(prompt_len)
        self.target, self.nexts = list(target), list(nexts)
        self.draft_calls = 0

    def reset(self, prompt: Sequence[int]) -> None:
        self.draft_calls = 0

    def propose(self, context: Sequence[int]) -> list[int]:
        m = len(context) - self.P
        chain: list[int] = []
        for j in range(self.k):
            pos = m + j
            token = self.nexts[pos] if pos < len(self.nexts) else NO_TOKEN
            chain.append(token)
            if pos >= len(self.target) or token != self.target[pos]:
                break
        chain += [NO_TOKEN] * (self.k - len(chain))
        self.draft_calls += self.k
        return chain

    def accepted(self, context: Sequence[int], hidden: Any = None) -> None:
        pass


def replay_counts(drafter: Any, prompt: Sequence[int], target: Sequence[int], max_new_tokens: int) -> tuple[Any, int]:
    """(``alignment.Verification``, draft calls) of the project's loop with ``drafter`` (a ``ChainReplay``,
    or a hybrid around one), replayed on the target's greedy output ``target``."""
    from .specloop import replay_drafter

    v = replay_drafter(drafter, prompt, target, max_new_tokens)
    return v, int(drafter.draft_calls)
