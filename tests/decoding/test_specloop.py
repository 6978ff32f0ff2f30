"""The project's own speculative loop on a static cache: plain greedy output for every drafter, and
prompt lookup's counts exactly as transformers' assisted generation (and its replay) give them."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoding.alignment import simulate_prompt_lookup

PROMPTS = ["the quick brown fox jumps over the lazy dog the quick brown", "def add ( a , b ) : return",
           "a b c a b c a b c a b", "x"]


@pytest.mark.parametrize("decoder", ["looped", "assisted"])  # the project's loop, and transformers' assisted generate()
@pytest.mark.parametrize("arm", ["plain", "lookup", "exit1", "draft", "draft-heur"])
def test_every_drafter_gives_plain_greedy_output(session, arm, decoder):
    for prompt in PROMPTS:
        ids = session.encode(prompt)
        ref = session.plain(ids)
        out = getattr(session, decoder)(ids, arm, reference=ref.tokens)
        assert out.lossless is True and out.tokens == ref.tokens and out.token_match_rate == 1.0, (decoder, arm, prompt)
        assert out.n_new_tokens == len(ref.tokens) > 0
        # counts: every target pass emits its accepted candidates plus one token
        assert out.accepted_tokens == out.n_new_tokens - out.target_calls
        assert 0 <= out.accepted_tokens <= out.draft_tokens and 1 <= out.target_calls <= out.n_new_tokens
        kind = session.config.arm(arm).kind
        assert (out.draft_calls == 0) == (kind in ("none", "prompt_lookup"))
        if kind == "none":
            assert out.draft_tokens == 0 and out.target_calls == out.n_new_tokens


def test_prompt_lookup_counts_are_transformers_counts(session):
    arm = session.config.arm("lookup")
    for prompt in PROMPTS:
        ids = session.encode(prompt)
        ref = session.plain(ids)
        ours, theirs = session.looped(ids, arm), session.assisted(ids, arm)
        replay = simulate_prompt_lookup(ids, ref.tokens, arm.prompt_lookup_num_tokens, session.max_new_tokens,
                                        arm.max_matching_ngram_size or 2, session.eos_ids)
        assert (ours.target_calls, ours.draft_tokens) == (theirs.target_calls, theirs.draft_tokens), prompt
        assert (ours.target_calls, ours.draft_tokens) == (replay.target_calls, replay.proposed), prompt


def test_the_static_cache_is_kept_across_prompts_and_refuses_what_the_context_cannot_hold(session):
    from decoding.loading import PromptError

    session.looped(session.encode(PROMPTS[0]), "lookup", max_new_tokens=4)
    first = session._static
    session.looped(session.encode(PROMPTS[1]), "lookup", max_new_tokens=4)
    assert session._static is first  # reused: a compiled step stays valid while its cache does
    limit = session.target.context_length  # the tiny target's 64 positions: the cache is capped there
    assert first.max_len == min(256, limit) and session.static_target(limit) is first
    with pytest.raises(PromptError, match=f"need {limit + 1} positions; the target's context holds {limit}"):
        session.static_target(limit + 1)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=3, max_value=60), min_size=1, max_size=24), st.integers(min_value=1, max_value=8),
       st.sampled_from(["plain", "lookup", "exit1", "draft"]))
def test_any_prompt_any_length_matches_generate(session, ids, n_new, arm):
    vocab = session.target.model.config.vocab_size
    ids = [3 + t % (vocab - 3) for t in ids]
    ref = session.plain(ids, max_new_tokens=n_new)
    out = session.looped(ids, arm, max_new_tokens=n_new, reference=ref.tokens)
    assert out.tokens == ref.tokens, (ids, n_new, arm)


def test_bad_inputs_are_refused_by_name(session, tiny_config):
    from decoding import specloop
    from decoding.loading import ArmNotSupportedError, PromptError
    from decoding.models import ArmConfig
    from decoding.session import DecodingSession

    with pytest.raises(PromptError, match="input_ids is empty"):
        session.looped([], "lookup")
    with pytest.raises(ValueError, match="num_output_tokens >= 1"):
        specloop.PromptLookup(0)
    with pytest.raises(ValueError, match="k >= 1"):
        specloop.ModelDraft(session.target.model, 0)
    other = DecodingSession(tiny_config([ArmConfig.of("other", "draft", draft="other", universal=True)]), threads=1)
    with pytest.raises(ArmNotSupportedError, match="arm 'other': the project's loop drafts with a draft of the target's own tokenizer"):
        other.looped(other.encode(PROMPTS[0]), "other")


def test_blocks_padded_to_power_of_two_buckets_change_nothing(session):
    """What compiled steps run (each block padded to 1, 2, 4, 8 or 16 tokens), run eagerly here."""
    from decoding.specloop import StaticTarget, speculative_greedy

    for prompt in PROMPTS:
        ids = session.encode(prompt)
        ref = session.plain(ids)
        for arm in ("plain", "lookup", "exit1", "draft"):
            padded = StaticTarget(session.target.model, session.target.context_length, buckets=True)
            out = speculative_greedy(padded, ids, session.drafter(arm), session.max_new_tokens, session.eos_ids)
            assert list(out.tokens) == list(ref.tokens), (prompt, arm)
            assert out.target_calls == session.looped(ids, arm).target_calls


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_compiled_steps_on_cuda_give_plain_greedy_output(all_arms_config):
    from decoding.session import DecodingSession

    s = DecodingSession(all_arms_config, device="cuda", threads=1)
    for prompt in PROMPTS:
        ids = s.encode(prompt)
        ref = s.plain(ids)
        for arm in ("plain", "lookup", "exit1", "draft"):
            out = s.looped(ids, arm, reference=ref.tokens, compile=True)
            assert out.lossless is True, (prompt, arm)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=20),
       st.lists(st.integers(min_value=0, max_value=5), min_size=0, max_size=20),
       st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=3), st.integers(min_value=0, max_value=24))
def test_replaying_a_prompt_lookup_drafter_gives_the_prompt_lookup_replay(prompt, greedy, k, n, extra):
    from decoding.specloop import PromptLookup, replay_drafter

    eos = {5}
    cut = next((i + 1 for i, t in enumerate(greedy) if t in eos), len(greedy))
    greedy = greedy[:cut]  # a greedy output ends at its first EOS (with room left) or at the length limit
    if not greedy:
        return
    max_new = len(greedy) + (extra if greedy[-1] in eos else 0)
    assert replay_drafter(PromptLookup(k, n, eos), prompt, greedy, max_new) == simulate_prompt_lookup(prompt, greedy, k, max_new, n, eos)
