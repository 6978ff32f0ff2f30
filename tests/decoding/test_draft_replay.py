"""Exact replay of model-draft arms (``decoding.draft_replay``): one forward pass of the draft over
the target's greedy output gives the counts the project's loop measures, for a ``draft`` arm with
``loop = true`` and for the hybrid ``lookup_draft``; ground truth, a brute-force property and bad
settings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding.alignment import replay_rounds
from decoding.arms import kind_of
from decoding.draft_replay import NO_TOKEN, ChainReplay, replay_counts
from decoding.specloop import LookupThen, PromptLookup

PROMPTS = ["the quick brown fox jumps over the lazy dog the quick brown", "def add ( a , b ) : return",
           "a b c a b c a b c a b", "hello world", "the lazy dog"]



def _arms():
    from decoding.models import ArmConfig

    return (ArmConfig.of("plain", "none"),
            *(arm for k in (1, 2, 4) for arm in (
                ArmConfig.of(f"draft-k{k}", "draft", draft="draft", num_assistant_tokens=k, loop=True),
                ArmConfig.of(f"hybrid-k{k}", "lookup_draft", draft="draft", num_assistant_tokens=k, prompt_lookup_num_tokens=3))))


@pytest.fixture(scope="module")
def replay_session(tiny_config):
    from decoding.session import DecodingSession

    return DecodingSession(tiny_config(_arms(), max_new_tokens=12), threads=1)


def test_replayed_counts_equal_the_loops_live_counts(replay_session):
    s = replay_session
    for arm in s.config.arms[1:]:
        for prompt in PROMPTS:
            ids = s.encode(prompt)
            ref = s.plain(ids)
            live = s.assisted(ids, arm, reference=ref.tokens)
            assert live.lossless is True
            v, calls = kind_of(arm).replay_counts(s, arm, ids, ref.tokens, s.max_new_tokens)
            assert (v.target_calls, v.proposed, v.accepted, calls) == \
                (live.target_calls, live.draft_tokens, live.accepted_tokens, live.draft_calls), (arm.name, prompt, v, live)


def test_an_alignment_only_build_prices_replayed_draft_arms(replay_session):
    from decoding.build import exact_counts
    from decoding.pricing import Calibration

    s = replay_session
    cal = Calibration(target_step_s=0.1, arm_step_s={a.name: 0.02 for a in s.config.arms}, verify_token_s=0.001)
    ids = s.encode(PROMPTS[0])
    target = s.greedy([ids])[0]
    for arm in s.config.arms[1:]:
        row = exact_counts(arm, ids, target, cal, s.max_new_tokens, s.eos_ids, s)
        live = s.assisted(ids, arm)
        assert row["target_calls"] == live.target_calls and row["draft_calls"] == live.draft_calls
        want = len(target) / (live.target_calls + live.draft_tokens * 0.01 + live.draft_calls * 0.2)
        assert row["speedup_count"] == pytest.approx(want)


def test_a_chain_proposes_the_drafts_tokens_until_it_leaves_the_target():
    target = [5, 6, 7, 8]
    nexts = [5, 6, 9, 8, 3]  # after prompt: 5 (right), after 5: 6 (right), after 5 6: 9 (wrong: target says 7)
    chain = ChainReplay(3, prompt_len=2, target=target, nexts=nexts)
    assert chain.propose([1, 2]) == [5, 6, 9]
    assert chain.propose([1, 2, 5, 6]) == [9, NO_TOKEN, NO_TOKEN]
    assert chain.propose([1, 2, 5, 6, 7]) == [8, 3, NO_TOKEN]  # past the target's end nothing is known
    assert chain.draft_calls == 9
    with pytest.raises(ValueError, match="needs len\\(target\\) \\+ 1 next tokens"):
        ChainReplay(3, 2, target, nexts[:-1])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(3, 6), min_size=1, max_size=12), st.lists(st.integers(3, 6), min_size=1, max_size=5),
       st.integers(1, 4), st.integers(0, 1000), st.booleans())
def test_replay_equals_a_brute_force_draft_loop(target, prompt, k, salt, hybrid):
    """A "draft model" that is any function of the whole context: the brute force drafts its real k-chain
    each round (as ``specloop.ModelDraft`` does); the replay sees only its next token after each
    prefix of the target's output."""

    def draft_next(context):
        return 3 + hash((tuple(context), salt)) % 4

    class BruteDraft:
        needs_hidden = False

        def __init__(self):
            self.draft_calls = 0

        def reset(self, p):
            self.draft_calls = 0

        def propose(self, context):
            ctx, out = list(context), []
            for _ in range(k):
                out.append(draft_next(ctx))
                ctx.append(out[-1])
            self.draft_calls += k
            return out

        def accepted(self, context, hidden=None):
            pass

    max_new = len(target) + 1
    nexts = [draft_next(prompt + target[:j]) for j in range(len(target) + 1)]
    brute, replay = BruteDraft(), ChainReplay(k, len(prompt), target, nexts)
    if hybrid:
        brute, replay = LookupThen(PromptLookup(2, 2), brute), LookupThen(PromptLookup(2, 2), replay)
    brute.reset(prompt)
    want = replay_rounds(prompt, target, max_new, brute.propose)
    got, calls = replay_counts(replay, prompt, target, max_new)
    assert (got, calls) == (want, brute.draft_calls)
    assert got.accepted == len(target) - got.target_calls  # the live definition


@pytest.mark.parametrize("arm, message", [
    ('kind = "draft"\ndraft = "draft"\nloop = true\nuniversal = true', "`loop = true` drafts with a draft of the target's own tokenizer"),
    ('kind = "draft"\ndraft = "draft"\nloop = true\nnum_assistant_tokens_schedule = "heuristic"', "drafts a constant num_assistant_tokens"),
    ('kind = "draft"\ndraft = "draft"\nloop = true\nassistant_confidence_threshold = 0.4', "drafts a constant num_assistant_tokens"),
    ('kind = "draft"\ndraft = "draft"\nloop = 1', "`loop` must be bool"),
    ('kind = "lookup_draft"\nnum_assistant_tokens = 3', "kind 'lookup_draft' needs `draft`"),
    ('kind = "lookup_draft"\ndraft = "draft"\nnum_assistant_tokens = 0', "`num_assistant_tokens` must be an integer >= 1"),
    ('kind = "lookup_draft"\ndraft = "draft"\nuniversal = true', "do not apply to kind 'lookup_draft'"),
])
def test_bad_loop_and_hybrid_settings_are_refused_by_name(toml_for, arm, message):
    from decoding.models import ModelsConfigError, parse_models_config

    with pytest.raises(ModelsConfigError, match=message):
        parse_models_config(toml_for(f'[[arms]]\nname = "x"\n{arm}\n'))


def test_alignment_only_speedup_count_needs_every_arm_to_replay(replay_session, tiny_config):
    from decoding.build import BuildConfig, check_alignment_only, reward_definition
    from decoding.models import ArmConfig

    cfg = BuildConfig(measure=False, reward=reward_definition("speedup_count"))
    check_alignment_only(cfg, replay_session.config)  # loop drafts and hybrids replay
    generate_draft = tiny_config([ArmConfig.of("d", "draft", draft="draft")])
    with pytest.raises(ValueError, match="arm\\(s\\) d run a drafting model.*set `loop = true`"):
        check_alignment_only(cfg, generate_draft)


def test_a_round_that_accepts_up_to_the_end_counts_as_live_decoding_does():
    """Live, accepted tokens = new tokens - target calls: a round whose candidates are accepted up to
    the output's EOS emits no token of the target's own (found on the real Qwen pair: the replay said
    one more than the loop on every prompt that ended that way)."""
    target = [5, 6, 2]  # 2: EOS, the last greedy token
    v = replay_rounds([1], target, 8, lambda ctx: target[len(ctx) - 1:len(ctx) + 2])
    assert (v.target_calls, v.proposed, v.accepted) == (1, 3, 2)
    v = replay_rounds([1], target, 8, lambda ctx: [9])
    assert (v.target_calls, v.proposed, v.accepted) == (3, 3, 0)
