"""Token alignment between an arm's greedy output and the target's greedy output (pure Python).

All metrics compare ``arm`` (the arm's own greedy tokens) with ``target`` (the target's greedy
tokens) of length ``L`` and lie in [0, 1]; they fill the outcomes columns of the same names:

- ``align_prefix``: length of the longest common prefix / L.
- ``align_position``: positions i < L where ``arm[i] == target[i]`` (an arm shorter than the
  target disagrees at the missing positions) / L.
- ``align_lcs``: length of the longest common subsequence / L.
- ``align_accept``: the acceptance rate of a *simulated greedy verification* with draft blocks
  of size k. Start at i = 0; while i < L the draft proposes the block ``arm[i : i + m]`` with
  m = min(k, L - i - 1) (as in transformers, the last token is always left to the target, so a
  block never runs past the target's length); the target accepts the longest run of it that equals ``target[i : i + m]``
  (``a`` tokens) and then emits one token of its own, so the next block starts at i + a + 1.
  ``align_accept = sum(a) / sum(m)`` over the blocks: the expected number of accepted tokens per
  block of size k, divided by k (exactly that when every block is full). The proxy assumes the
  draft, given the target's prefix, proposes what it produced on its own at the same positions
  (exact while the two outputs agree; after the first disagreement it is an approximation).
  A one-token target leaves nothing to propose; then ``align_accept = align_position``.

Orderings that always hold: ``align_prefix <= align_position <= align_lcs``, and in the
simulation ``accepted + target passes == L`` (every pass emits exactly one token of its own).

Conventions: with an empty target (L = 0) every metric is 1.0 when the arm's output is empty too
and 0.0 otherwise.

For prompt lookup, which has no output of its own, ``simulate_prompt_lookup`` replays
transformers' ``PromptLookupCandidateGenerator`` on the prompt followed by the target's tokens:
under greedy verification the context at every step *is* that sequence, so the replay gives the
exact candidate, accepted-token and target-pass counts that assisted decoding will measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence


def _empty(arm: Sequence[int]) -> float:
    return 1.0 if len(arm) == 0 else 0.0


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def align_prefix(arm: Sequence[int], target: Sequence[int]) -> float:
    if not target:
        return _empty(arm)
    return common_prefix(arm, target) / len(target)


def align_position(arm: Sequence[int], target: Sequence[int]) -> float:
    if not target:
        return _empty(arm)
    return sum(1 for x, y in zip(arm, target) if x == y) / len(target)


def lcs_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if x == y else (prev[j] if prev[j] >= cur[j - 1] else cur[j - 1])
        prev = cur
    return prev[-1]


def align_lcs(arm: Sequence[int], target: Sequence[int]) -> float:
    if not target:
        return _empty(arm)
    return lcs_length(arm, target) / len(target)


@dataclass(frozen=True)
class Verification:
    """Counts of a simulated greedy verification: tokens proposed, accepted, and target passes."""

    proposed: int
    accepted: int
    target_calls: int

    @property
    def rate(self) -> float:
        """accepted / proposed (0.0 when nothing was proposed)."""
        return self.accepted / self.proposed if self.proposed else 0.0


def simulate_blocks(arm: Sequence[int], target: Sequence[int], k: int) -> Verification:
    """Greedy verification of position-aligned draft blocks of size ``k`` (see the module docstring)."""
    if k < 1:
        raise ValueError(f"block size k must be >= 1; got {k}")
    L = len(target)
    i = proposed = accepted = calls = 0
    while i < L:
        m = min(k, L - i - 1)
        run = 0
        while run < m and i + run < len(arm) and arm[i + run] == target[i + run]:
            run += 1
        proposed += m
        accepted += run
        calls += 1
        i += run + 1
    return Verification(proposed=proposed, accepted=accepted, target_calls=calls)


def align_accept(arm: Sequence[int], target: Sequence[int], k: int) -> float:
    if not target:
        return _empty(arm)
    v = simulate_blocks(arm, target, k)
    return v.rate if v.proposed else align_position(arm, target)


def alignment_metrics(arm: Sequence[int], target: Sequence[int], k: int) -> dict[str, float]:
    """All four metrics as a dict keyed by the outcomes column names."""
    return {
        "align_prefix": align_prefix(arm, target),
        "align_position": align_position(arm, target),
        "align_lcs": align_lcs(arm, target),
        "align_accept": align_accept(arm, target, k),
    }


# -- prompt lookup ------------------------------------------------------------------------------
def prompt_lookup_candidates(
    context: Sequence[int], num_output_tokens: int, max_matching_ngram_size: int = 2, eos: Iterable[int] = ()
) -> list[int]:
    """The candidates transformers' prompt lookup proposes after ``context`` (no logits processors).

    For n from ``max_matching_ngram_size`` down to 1: find the first (leftmost) earlier occurrence
    of the context's last n tokens that has a continuation; propose up to ``num_output_tokens``
    tokens of it, cut before the first EOS. No match: no candidates.
    """
    L = len(context)
    eos = set(eos)
    for n in range(min(max_matching_ngram_size, L - 1), 0, -1):
        tail = list(context[L - n:])
        for start in range(0, L - n + 1):
            if list(context[start:start + n]) != tail:
                continue
            s, e = start + n, min(start + n + num_output_tokens, L)
            if s < e:
                chosen = list(context[s:e])
                for j, t in enumerate(chosen):
                    if t in eos:
                        chosen = chosen[:j]
                        break
                if not chosen:  # transformers stops at this match and falls back to one plain step
                    return []
                return chosen
    return []


def replay_rounds(prompt: Sequence[int], greedy: Sequence[int], max_new_tokens: int,
                  propose: Callable[[list[int]], Sequence[int]],
                  accepted: Callable[[list[int]], None] | None = None) -> Verification:
    """Exact counts of greedy assisted decoding with a drafter that needs no model state, replayed on
    the target's greedy new tokens ``greedy`` (at most ``max_new_tokens``, ending at EOS or the
    limit): every target pass predicts the next greedy token, so each round accepts the longest
    prefix of ``propose(context)`` that agrees with it, then one token of the target's own.
    ``accepted(context)`` is told the context after each round. As transformers does, no
    candidates are asked for when one token is left, and none are accepted past the limit.
    """
    P, L = len(prompt), len(greedy)
    max_length = P + max_new_tokens
    ctx = list(prompt)
    i = proposed = accepted_n = calls = 0
    while i < L:
        cur = P + i
        cand = [] if max_length == cur + 1 else list(propose(ctx))
        run = 0
        while run < len(cand) and i + run < L and cand[run] == greedy[i + run]:
            run += 1
        run = min(run, max(max_length - cur - 1, 0))
        proposed += len(cand)
        # as live decoding counts it (``DecodeOutcome.accepted_tokens`` = new tokens - target calls):
        # a round whose accepted candidates end the output (at EOS) emits no token of the target's own
        accepted_n += min(run + 1, L - i) - 1
        calls += 1
        ctx.extend(greedy[i:i + run + 1])
        if accepted is not None:
            accepted(ctx)
        i += run + 1
    return Verification(proposed=proposed, accepted=accepted_n, target_calls=calls)


def simulate_prompt_lookup(
    prompt: Sequence[int],
    target: Sequence[int],
    num_output_tokens: int,
    max_new_tokens: int,
    max_matching_ngram_size: int = 2,
    eos: Iterable[int] = (),
) -> Verification:
    """Replay prompt-lookup assisted decoding on the target's greedy output; exact counts.

    ``prompt``: the prompt's token ids; ``target``: the target's greedy new tokens (at most
    ``max_new_tokens``, ending at EOS or the limit).
    """
    eos = set(eos)
    return replay_rounds(prompt, target, max_new_tokens,
                         lambda ctx: prompt_lookup_candidates(ctx, num_output_tokens, max_matching_ngram_size, eos))
