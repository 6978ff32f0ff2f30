"""The arm-kind contract: every registered kind (``decoding.arms.KINDS``) parses from a models file,
loads, decodes to plain greedy's output through transformers' ``generate()`` and through the
project's loop, says truly whether it runs a model, replays its counts exactly where it claims
to, calibrates, and fills an alignment-only row; on the tiny models of ``tests/conftest.py``.
A new kind is covered by adding it to the registry: its ``example`` arm is what runs here."""

from __future__ import annotations

import json

import pytest

from decoding.arms import KINDS, is_plain, kind_of, model_free_kinds
from decoding.arms.base import ARM_COMMON, ArmKind
from decoding.specloop import replay_drafter
from logging_data import ARM_KINDS

PROMPTS = ["the quick brown fox jumps over the lazy dog the quick brown", "def add ( a , b ) : return", "a b c a b c a b c a b"]


def _arms(kind: ArmKind) -> list:
    """The kind's example arm, named "arm", after a plain arm unless it is plain decoding itself."""
    from decoding.models import ArmConfig

    return [ArmConfig.of("plain", "none")] * (not kind.plain) + [ArmConfig.of("arm", kind.name, **kind.example)]


@pytest.fixture(scope="module", params=list(KINDS))
def kind_session(request, tiny_config):
    from decoding.session import DecodingSession

    kind = KINDS[request.param]
    config = tiny_config(_arms(kind))  # written as a models file and parsed back (ModelsConfig.of)
    return kind, DecodingSession(config, threads=1)


def test_the_registry_is_a_literal_table_of_distinct_kinds_the_log_contract_knows():
    assert list(KINDS)[:4] == ["none", "draft", "prompt_lookup", "early_exit"]  # the order messages list them in
    for name, kind in KINDS.items():
        assert isinstance(kind, ArmKind) and kind.name == name and kind.label, name
        assert name in ARM_KINDS, f"kind {name!r} must be declared in logging_data.schema.ARM_KINDS for logs to record it"
        assert kind.valid_keys()[:3] == ARM_COMMON and set(kind.example) <= set(kind.keys), name
        assert not (kind.model_free and kind.own_output), name  # a model-free drafter has no output of its own
    assert sum(k.plain for k in KINDS.values()) == 1 and is_plain("none") and not is_plain("unknown")
    assert set(model_free_kinds()) == {k for k, v in KINDS.items() if v.model_free}


def test_pricing_knows_the_model_free_and_plain_kinds_the_registry_declares():
    """``decoding.pricing`` sits below the kinds (it imports none of them), so it names the kinds whose drafting costs
    nothing and the plain one; they must be the registry's."""
    from decoding.pricing import MODEL_FREE_KINDS, PLAIN_KIND

    assert set(MODEL_FREE_KINDS) == set(model_free_kinds())
    assert [k for k, v in KINDS.items() if v.plain] == [PLAIN_KIND]


def test_an_unregistered_kind_is_refused_by_name():
    from decoding.loading import ArmNotSupportedError

    with pytest.raises(ArmNotSupportedError, match=r"kind 'unknown' is not an arm kind decoding can run; kinds: none, draft"):
        kind_of("unknown")


def test_its_example_parses_and_its_keys_belong_to_it(kind_session, toml_for):
    from decoding.models import ModelsConfigError, parse_models_config

    kind, session = kind_session
    arm = session.config.arm("arm")
    assert arm.kind == kind.name and kind_of(arm) is kind
    json.dumps(arm.generate_kwargs())  # settings only: model objects are added by the session
    foreign = next((k for other in KINDS.values() for k in other.keys if k not in kind.valid_keys()), None)
    if foreign is not None:
        bad = toml_for(f'[[arms]]\nname = "x"\nkind = "{kind.name}"\n{foreign} = 1\n')
        with pytest.raises(ModelsConfigError, match=f"do not apply to kind '{kind.name}'"):
            parse_models_config(bad)
    log_arm = session.config.to_log_arms()[-1]
    assert log_arm.kind == kind.name and log_arm.attrs["kind"] == kind.name


def test_it_decodes_to_plain_greedy_output_through_generate_and_the_loop(kind_session):
    kind, session = kind_session
    arm = session.config.arm("arm")
    for prompt in PROMPTS:
        ids = session.encode(prompt)
        ref = session.plain(ids)
        for out in (session.assisted(ids, arm, reference=ref.tokens), session.looped(ids, arm, reference=ref.tokens)):
            assert out.lossless is True and out.tokens == ref.tokens, (kind.name, prompt)
            assert out.accepted_tokens == out.n_new_tokens - out.target_calls >= 0
            assert (out.draft_calls == 0) == kind.model_free, (kind.name, out)
            if kind.plain:
                assert out.draft_tokens == 0 and out.target_calls == out.n_new_tokens


def test_a_model_free_kind_replays_its_exact_counts(kind_session):
    kind, session = kind_session
    arm = session.config.arm("arm")
    for prompt in PROMPTS:
        ids = session.encode(prompt)
        ref = session.plain(ids)
        replay = kind.replay(arm, ids, ref.tokens, session.max_new_tokens, session.eos_ids)
        if not kind.model_free:
            assert replay is None
            continue
        live = session.assisted(ids, arm)
        assert (replay.target_calls, replay.proposed, replay.accepted) == (live.target_calls, live.draft_tokens, live.accepted_tokens)
        generic = replay_drafter(kind.free_drafter(arm, session.eos_ids), ids, ref.tokens, session.max_new_tokens)
        assert generic == replay  # a kind's own replay, where it has one, is its drafter's rounds


def test_a_kind_that_says_it_replays_gives_the_live_counts(kind_session):
    """``replays(arm)`` / ``replay_counts``: model-free kinds, and model drafts in the project's loop."""
    kind, session = kind_session
    arm = session.config.arm("arm")
    assert kind.replays(arm) == (kind.model_free or kind.name == "lookup_draft")  # the draft example decodes via generate()
    for prompt in PROMPTS:
        ids = session.encode(prompt)
        ref = session.plain(ids)
        counts = kind.replay_counts(session, arm, ids, ref.tokens, session.max_new_tokens)
        if not kind.replays(arm):
            assert counts is None
            continue
        v, draft_calls = counts
        live = session.assisted(ids, arm)
        assert (v.target_calls, v.proposed, v.accepted, draft_calls) == \
            (live.target_calls, live.draft_tokens, live.accepted_tokens, live.draft_calls), (kind.name, prompt)


def test_its_own_output_size_and_calibration_say_whether_it_runs_a_model(kind_session):
    from decoding.calibrate import calibrate
    from decoding.pricing import for_arms

    kind, session = kind_session
    arm = session.config.arm("arm")
    own = session.arm_greedy(PROMPTS, arm)
    if kind.own_output:
        assert all(isinstance(o, list) and all(isinstance(t, int) for t in o) for o in own)
    else:
        assert own == [None] * len(PROMPTS)
    assert (arm.name in session.n_params_m()) == (not kind.model_free)
    cal = calibrate(session, context_len=8, repeats=1, warmup=0)
    assert (cal.arm_step_s[arm.name] == 0.0) == kind.model_free
    assert for_arms(cal, session.config.arms).arm_step_s == cal.arm_step_s


def test_it_fills_an_alignment_only_row(kind_session):
    from decoding.build import alignment_for, exact_counts
    from decoding.pricing import Calibration

    kind, session = kind_session
    arm = session.config.arm("arm")
    cal = Calibration(target_step_s=0.01, arm_step_s={arm.name: 0.0}, verify_token_s=0.001, round_overhead_s=0.001)
    ids = session.encode(PROMPTS[0])
    target = session.greedy([ids])[0]
    counts = exact_counts(arm, ids, target, cal, session.max_new_tokens, session.eos_ids)
    assert counts["n_new_tokens"] == len(target)
    assert (counts["target_calls"] is not None) == kind.model_free  # without the session, only model-free kinds
    with_session = exact_counts(arm, ids, target, cal, session.max_new_tokens, session.eos_ids, session)
    assert (with_session["target_calls"] is not None) == kind.replays(arm)
    own = session.arm_greedy([PROMPTS[0]], arm)[0]
    row = alignment_for(session, arm, ids, target, own, session.max_new_tokens)
    # plain decoding has no acceptance; a kind with neither an output of its own nor replayable counts
    # has it only from decoding
    assert (row["align_accept"] is None) == (kind.plain or not (kind.own_output or kind.model_free))
    assert (row["arm_output"] is not None) == kind.own_output


def test_it_says_truly_whether_it_loads_a_model_beside_the_target(kind_session):
    """``separate_model`` is what the drafter commands read to leave a kind out of their target-only
    session (``decoding.drafters.states.target_session``): it must be true exactly when the kind
    loads a model of its own, and the target-only session must hold no such model."""
    from decoding.drafters.states import target_session

    kind, session = kind_session
    arm = session.config.arm("arm")
    added = [m for m in kind.models(session, arm) if m is not session.target.model]
    assert kind.separate_model == bool(added), kind.name
    only = target_session(session.config, threads=1)
    assert [a.name for a in only.config.arms] == [a.name for a in session.config.arms if not kind_of(a).separate_model]
    assert not any(kind_of(a).models(only, a) for a in only.config.arms) and only.target.spec == session.target.spec
