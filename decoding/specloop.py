"""The project's own greedy speculative decoding loop over a model's public forward, on a static KV cache.

Why it exists: on a GPU a 135M target's step is bound by Python and kernel launches (25 ms per
token through ``generate()`` on an H200, 3.5 ms with transformers' compiled static-cache step),
and transformers refuses assisted generation on a static cache. A loop of fixed shapes over a
static cache can be compiled (``torch.compile(mode="reduce-overhead")``: CUDA graphs, one per
block length), for plain decoding and for every drafter alike.

The loop (``speculative_greedy``), one target call per round:

1. the drafter proposes candidates after the tokens so far (none for plain decoding, none when
   one token is left to generate);
2. the target runs once over the tokens not yet in its cache plus the candidates (the first call
   is the prompt's prefill), and its argmax at each position is its greedy choice;
3. the longest prefix of candidates equal to those choices is accepted, plus the target's own
   next token; rejected candidates' cache entries stay behind the cache position and are
   overwritten later (the causal mask never lets a query see them).

Output is plain greedy decoding's, token for token (``generate()`` stays the reference the tests
hold it to); the counts (target calls, drafted and accepted tokens) of prompt lookup are exactly
those of transformers' assisted generation (``decoding.alignment.simulate_prompt_lookup``
replays them). Drafters, one per arm kind: ``NoDraft`` (plain), ``PromptLookup`` (transformers'
candidates), ``ModelDraft`` (a draft model, or the target's first layers for early exit, drafting
a constant ``k`` tokens greedily on its own cache, cropped to what the target accepted), and
``decoding.heads.HeadDraft`` (a head on the target's own hidden states: a drafter with
``needs_hidden`` receives the target's final hidden state of the token it chose each round).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .alignment import prompt_lookup_candidates


@dataclass(frozen=True)
class LoopResult:
    """What one prompt decoded by ``speculative_greedy`` gave: the new tokens (up to and with EOS)
    and the counts, as ``DecodeOutcome`` defines them."""

    tokens: tuple[int, ...]
    target_calls: int
    draft_calls: int
    draft_tokens: int
    accepted_tokens: int


class NoDraft:
    """Plain greedy decoding: no candidates, one token per target call."""

    draft_calls = 0

    def reset(self, prompt: Sequence[int]) -> None:
        pass

    def propose(self, context: Sequence[int]) -> list[int]:
        return []

    def accepted(self, context: Sequence[int], hidden: Any = None) -> None:
        pass


class PromptLookup(NoDraft):
    """transformers' prompt lookup: the continuation of the last n-gram's first earlier occurrence."""

    def __init__(self, num_output_tokens: int, max_matching_ngram_size: int = 2, eos: Iterable[int] = ()) -> None:
        if num_output_tokens < 1 or max_matching_ngram_size < 1:
            raise ValueError(f"prompt lookup needs num_output_tokens >= 1 and max_matching_ngram_size >= 1; got "
                             f"{num_output_tokens} and {max_matching_ngram_size}")
        self.k, self.n, self.eos = int(num_output_tokens), int(max_matching_ngram_size), frozenset(eos)

    def propose(self, context: Sequence[int]) -> list[int]:
        return prompt_lookup_candidates(context, self.k, self.n, self.eos)


class ModelDraft:
    """A drafting model proposing ``k`` tokens greedily on its own dynamic KV cache.

    ``layers``: a context manager factory under which ``model`` runs (the target cut to its first
    layers, for early exit: ``decoding.loading.first_layers``). After each round the cache is cropped
    to the tokens the target kept, so only new tokens are fed next time.
    """

    def __init__(self, model: Any, k: int, layers: Callable[[], Any] | None = None) -> None:
        if k < 1:
            raise ValueError(f"a drafting model needs k >= 1 tokens per round; got {k}")
        self.model, self.k, self.layers = model, int(k), layers or nullcontext
        self.draft_calls = 0
        self._cache: Any = None
        self._fed: list[int] = []

    def reset(self, prompt: Sequence[int]) -> None:
        from transformers import DynamicCache

        self._cache = DynamicCache()
        self._fed = []
        self.draft_calls = 0

    def _forward(self, tokens: Sequence[int]) -> int:
        import torch

        x = torch.tensor([list(tokens)], dtype=torch.long, device=self.model.device)
        out = self.model(input_ids=x, past_key_values=self._cache, use_cache=True)
        self.draft_calls += 1
        return int(out.logits[0, -1].argmax())

    def propose(self, context: Sequence[int]) -> list[int]:
        import torch

        context = list(context)
        with torch.no_grad(), self.layers():
            token = self._forward(context[len(self._fed):])
            candidates = [token]
            for _ in range(self.k - 1):
                token = self._forward([token])
                candidates.append(token)
        self._fed = context + candidates[:-1]  # what the draft cache holds now
        return candidates

    def accepted(self, context: Sequence[int], hidden: Any = None) -> None:
        """Crop the draft cache to its longest prefix that ``context`` (the tokens kept) agrees with."""
        keep = 0
        for a, b in zip(self._fed, context):
            if a != b:
                break
            keep += 1
        if keep < len(self._fed):
            self._cache.crop(keep - len(self._fed))  # negative: drop that many (every transformers version)
            self._fed = self._fed[:keep]


class LookupThen:
    """A per-round hybrid drafter: ``lookup``'s candidates (prompt lookup) when it has any, else
    ``inner``'s (a draft model, a head). ``inner`` is told every round's context, so its cache stays
    in step with the tokens kept whether or not it drafted."""

    def __init__(self, lookup: Any, inner: Any) -> None:
        self.lookup, self.inner = lookup, inner
        self.needs_hidden = bool(getattr(inner, "needs_hidden", False))

    @property
    def draft_calls(self) -> int:
        return self.inner.draft_calls

    def reset(self, prompt: Sequence[int]) -> None:
        self.lookup.reset(prompt)
        self.inner.reset(prompt)

    def propose(self, context: Sequence[int]) -> list[int]:
        return self.lookup.propose(context) or self.inner.propose(context)

    def accepted(self, context: Sequence[int], hidden: Any = None) -> None:
        self.inner.accepted(context, hidden)


class StaticTarget:
    """The target on a static KV cache of ``max_len`` positions; ``step`` runs one forward pass.

    ``compile``: run blocks of up to ``compile_max_block`` tokens through
    ``torch.compile(mode="reduce-overhead")`` (CUDA graphs on a GPU); longer feeds (the prefill)
    run eagerly. ``buckets`` (on with ``compile``): pad each block to the next power of two, so a
    handful of graphs (1, 2, 4, 8, 16 tokens) serve every block length; the padding's outputs are
    dropped and, being later positions, cannot change earlier ones (causal attention), and its
    cache entries lie beyond the position the next step writes from.
    """

    def __init__(self, model: Any, max_len: int, compile: bool = False, compile_max_block: int = 16,
                 buckets: bool | None = None) -> None:
        import torch
        from transformers import StaticCache

        self.model, self.max_len = model, int(max_len)
        self.cache = StaticCache(config=model.config, max_cache_len=self.max_len)
        self.compile_max_block = int(compile_max_block)
        self.buckets = bool(compile if buckets is None else buckets)
        self._compiled = None
        if compile:
            import torch._dynamo

            for name in ("recompile_limit", "cache_size_limit"):  # one graph per bucket, prefill eager
                if hasattr(torch._dynamo.config, name):
                    setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 16))
            self._compiled = torch.compile(model.forward, mode="reduce-overhead", fullgraph=False, dynamic=False)

    def reset(self) -> None:
        self.cache.reset()

    def _seek(self, position: int) -> None:
        """Make the cache write the next tokens at ``position`` (dropping rejected candidates).

        transformers >= 5.2x static layers keep their own write counter (``cumulative_length``)
        instead of reading ``cache_position``; older ones write where ``cache_position`` says."""
        for layer in getattr(self.cache, "layers", ()):
            counter = getattr(layer, "cumulative_length", None)
            if counter is None:
                continue
            if isinstance(counter, int):
                layer.cumulative_length = int(position)
            else:
                counter.fill_(int(position))

    def step(self, tokens: Sequence[int], position: int, hidden: bool = False) -> list[int]:
        """The target's argmax after each of ``tokens``, fed at cache positions ``position``, ... .
        ``hidden``: also keep the final (normed) hidden states of ``tokens`` in ``last_hidden``."""
        import torch

        n = len(tokens)
        feed = list(tokens)
        small = n <= self.compile_max_block
        if self.buckets and small:
            feed += [feed[-1]] * ((1 << (n - 1).bit_length()) - n)
        if position + len(feed) > self.max_len:
            raise ValueError(f"the static cache holds {self.max_len} positions; a step would fill {position + len(feed)}")
        self._seek(position)
        device = self.model.device
        x = torch.tensor([feed], dtype=torch.long, device=device)
        positions = torch.arange(position, position + len(feed), device=device)
        forward = self._compiled if self._compiled is not None and small else self.model.forward
        with torch.no_grad():
            out = forward(input_ids=x, cache_position=positions, position_ids=positions.unsqueeze(0),
                          past_key_values=self.cache, use_cache=True, output_hidden_states=hidden)
            if hidden:
                self.last_hidden = out.hidden_states[-1][0, :n].clone()
            return out.logits[0, :n].argmax(-1).tolist()


def replay_drafter(drafter: Any, prompt: Sequence[int], greedy: Sequence[int], max_new_tokens: int) -> Any:
    """Exact counts of ``speculative_greedy`` with a drafter that needs no target state (a model-free
    one), replayed on the target's greedy output ``greedy`` instead of run
    (``alignment.replay_rounds``). Returns an ``alignment.Verification``."""
    from .alignment import replay_rounds

    prompt = [int(t) for t in prompt]
    drafter.reset(prompt)
    return replay_rounds(prompt, [int(t) for t in greedy], max_new_tokens, drafter.propose,
                         lambda context: drafter.accepted(context, None))


def speculative_greedy(target: StaticTarget, prompt: Sequence[int], drafter: Any, max_new_tokens: int,
                       eos: Iterable[int] = ()) -> LoopResult:
    """Greedy decoding of ``prompt`` with ``drafter``'s candidates verified by ``target`` (module docstring)."""
    prompt = [int(t) for t in prompt]
    if not prompt:
        raise ValueError("speculative_greedy: the prompt is empty")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1; got {max_new_tokens}")
    eos = frozenset(int(t) for t in eos)
    P = len(prompt)
    max_length = P + max_new_tokens
    target.reset()
    drafter.reset(prompt)
    context, out = list(prompt), []
    pending, position = list(prompt), 0
    calls = proposed = accepted = 0
    while len(out) < max_new_tokens:
        current = P + len(out)
        candidates = [] if max_length == current + 1 else list(drafter.propose(context))
        needs_hidden = getattr(drafter, "needs_hidden", False)
        predictions = target.step(pending + candidates, position, hidden=needs_hidden)
        base = len(pending) - 1
        run = 0
        while run < len(candidates) and predictions[base + run] == candidates[run]:
            run += 1
        run = min(run, max(max_length - current - 1, 0))
        new = candidates[:run] + [predictions[base + run]]
        calls += 1
        proposed += len(candidates)
        accepted += run
        position += len(pending) + run
        done = False
        for j, t in enumerate(new):
            if t in eos:
                new, done = new[:j + 1], True
                break
        out.extend(new)
        context.extend(new)
        drafter.accepted(context, target.last_hidden[base + run] if needs_hidden else None)
        pending = [new[-1]]
        if done:
            break
    out = out[:max_new_tokens]
    return LoopResult(tokens=tuple(out), target_calls=calls, draft_calls=int(drafter.draft_calls), draft_tokens=proposed,
                      accepted_tokens=len(out) - calls)
