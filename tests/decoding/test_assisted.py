"""Assisted decoding on tiny random models: nothing mutated, repeats and mismatches reported (lossless for every arm
kind, with honest counts: tests/decoding/test_specloop.py, beside the project's own loop)."""

from __future__ import annotations

import pytest

PROMPTS = ["the quick brown fox jumps over the lazy dog the quick brown", "def add ( a , b ) : return"]


def test_plain_reference_matches_batched_greedy(session):
    rows = [session.encode(p) for p in PROMPTS]
    batched = session.greedy(rows)
    singles = [list(session.plain(r).tokens) for r in rows]
    assert batched == singles


def test_draft_sharing_target_first_layer_agrees_with_early_exit(session):
    # the fixture's draft is the target's embeddings + layer 0 + head, so its own greedy output
    # is the early-exit-at-1 output of the target
    ids = session.encode(PROMPTS[0])
    assert session.greedy([ids], "draft") == session.greedy([ids], "exit1")
    assert session.arm_greedy([PROMPTS[0]], "lookup") == [None]


def test_assisted_repeats_warmup_and_mismatch_report(session):
    ids = session.encode(PROMPTS[0])
    ref = session.plain(ids)
    out = session.assisted(ids, "lookup", repeats=2, warmup=1, reference=list(ref.tokens[:-1]) + [0])
    assert out.n_repeats == 2 and len(out.wall_times_s) == 2 and out.wall_time_s > 0
    assert out.lossless is False and out.first_mismatch == len(ref.tokens) - 1
    assert out.token_match_rate == (len(ref.tokens) - 1) / len(ref.tokens)
    same = session.assisted(ids, "lookup", reference=ref.tokens)
    assert same.lossless is True and same.token_match_rate == 1.0 and session.assisted(ids, "lookup").token_match_rate is None
    assert out.n_threads >= 1


def test_models_and_configs_are_left_as_they_were(session):
    target = session.target.model
    draft = session.draft("draft").model
    before = (target.config.to_dict(), target.generation_config.to_dict(), draft.generation_config.to_dict())
    hooks_before = (len(target._forward_pre_hooks), len(draft._forward_pre_hooks))
    ids = session.encode(PROMPTS[1])
    for arm in ("exit1", "draft", "draft-heur"):
        session.assisted(ids, arm)
    session.greedy([ids], "exit1")
    after = (target.config.to_dict(), target.generation_config.to_dict(), draft.generation_config.to_dict())
    assert after == before
    assert (len(target._forward_pre_hooks), len(draft._forward_pre_hooks)) == hooks_before


def test_universal_draft_with_another_tokenizer_is_lossless(tiny_config):
    from decoding.models import ArmConfig
    from decoding.session import DecodingSession

    s = DecodingSession(tiny_config([ArmConfig.of("other", "draft", draft="other", universal=True)], max_new_tokens=6), threads=1)
    ids = s.encode(PROMPTS[0])
    ref = s.plain(ids)
    out = s.assisted(ids, "other", reference=ref.tokens)
    assert out.lossless is True and out.draft_calls >= 1
    own = s.arm_greedy([PROMPTS[0]], "other")[0]
    assert isinstance(own, list) and all(isinstance(t, int) for t in own)


def test_early_exit_on_gpt2_is_refused_and_config_not_mutated(tiny_models):
    from decoding.loading import ArmNotSupportedError, check_early_exit, load_model

    m = load_model(tiny_models["gpt2"], "cpu")
    before = m.model.config.to_dict()
    with pytest.raises(ArmNotSupportedError, match=r"GPT2LMHeadModel .*gpt2.* ignores config.num_hidden_layers"):
        check_early_exit(m, 1, "exit1")
    assert m.model.config.to_dict() == before and m.model.config.n_layer == 2
