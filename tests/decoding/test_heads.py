"""Heads on the target's hidden states: training rows only from true greedy outputs, safetensors round trip,
lossless drafting in the project's loop, and replayed counts equal to the live loop's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from decoding.cpu_linear import dense_weight

from decoding import heads
from decoding.specloop import StaticTarget, speculative_greedy

PROMPTS = ["the quick brown fox jumps over the lazy dog the quick brown", "def add ( a , b ) : return",
           "a b c a b c a b c a b", "one two three one two three one two"]


@pytest.fixture(scope="module")
def greedy(session):
    ids = [session.encode(p) for p in PROMPTS]
    return ids, [list(session.plain(i).tokens) for i in ids]


@pytest.fixture(scope="module")
def trained(session, greedy):
    """A head over-fitted to the tiny target's greedy outputs of PROMPTS, so that it proposes well."""
    ids, outs = greedy
    rows, ok = heads.collect(session.target.model, ids, outs)
    assert all(ok)
    vocab = heads.frequent_vocabulary(np.concatenate([rows.x_next, rows.x_next2]), 64, session.eos_ids)
    head, record = heads.train_head(session.target.model, rows, vocab, epochs=60, batch_size=16, lr=3e-3, seed=0)
    return head, record


def test_the_final_hidden_state_is_what_the_output_layer_reads(session, greedy):
    import torch

    ids, outs = greedy
    (h, arg), = heads.hidden_states(session.target.model, [ids[0] + outs[0]])
    logits = h @ dense_weight(session.target.model.get_output_embeddings()).detach().float().T
    assert torch.equal(logits.argmax(-1), arg)


def test_rows_come_only_from_true_greedy_outputs(session, greedy):
    ids, outs = greedy
    bad = [list(o) for o in outs]
    bad[1][2] = (bad[1][2] + 1) % session.target.model.config.vocab_size  # not the target's choice any more
    rows, ok = heads.collect(session.target.model, ids, bad)
    assert ok == [True, False, True, True]
    assert set(np.unique(rows.group)) == {0, 2, 3}
    assert len(rows.h) == sum(len(o) - 1 for i, o in enumerate(outs) if i != 1)
    with pytest.raises(ValueError, match="no sequence was the target's greedy output"):
        heads.collect(session.target.model, ids[1:2], bad[1:2])


def test_training_is_seeded_and_a_saved_head_loads_back_equal(session, greedy, trained, tmp_path):
    import torch

    head, record = trained
    assert record["loss_per_epoch"][-1] < record["loss_per_epoch"][0]
    heads.save_head(head, tmp_path / "h", record, made_for=session.target_identity)
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["head.json", "head.safetensors"]
    meta = json.loads((tmp_path / "h" / "head.json").read_text())
    assert meta["vocab_size"] == len(head.vocab) and meta["made_for"] == session.target_identity
    back = heads.load_head(tmp_path / "h")
    x, e = torch.randn(3, head.hidden), torch.randn(3, head.hidden)
    assert torch.equal(back(x, e), head(x, e)) and torch.equal(back.vocab, head.vocab)
    with pytest.raises(FileNotFoundError, match="expected head.json and head.safetensors"):
        heads.load_head(tmp_path)


def test_head_drafting_is_lossless_and_replays_exactly(session, greedy, trained):
    head, _ = trained
    ids, outs = greedy
    target = StaticTarget(session.target.model, session.target.context_length)
    total_accepted = 0
    for p, ref in zip(ids, outs):
        live = speculative_greedy(target, p, heads.HeadDraft(head, session.target.model, 3), session.max_new_tokens, session.eos_ids)
        assert list(live.tokens) == ref
        (h, _), = heads.hidden_states(session.target.model, [p + ref])
        replay = heads.replay_head(heads.HeadDraft(head, session.target.model, 3), h, p, ref, session.max_new_tokens, session.eos_ids)
        assert (replay["target_calls"], replay["draft_tokens"], replay["draft_calls"]) == \
            (live.target_calls, live.draft_tokens, live.draft_calls), p
        total_accepted += live.accepted_tokens
    assert total_accepted > 0  # the over-fitted head does propose tokens the target keeps


@pytest.mark.parametrize("k", [1, 3, 5])
def test_chains_drafted_for_every_position_at_once_replay_the_same_counts(session, greedy, trained, k):
    head, _ = trained
    ids, outs = greedy
    states = [h for h, _ in heads.hidden_states(session.target.model, [p + o for p, o in zip(ids, outs)])]
    many = heads.draft_chains_many(head, session.target.model, [(h.numpy(), p + o, len(p) - 1) for h, p, o in zip(states, ids, outs)], k)
    for h, p, o, chains in zip(states, ids, outs, many):
        one = heads.draft_chains(head, session.target.model, h.numpy(), p + o, len(p) - 1, k)
        assert np.array_equal(one, chains)
        step = heads.replay_head(heads.HeadDraft(head, session.target.model, k), h, p, o, session.max_new_tokens, session.eos_ids)
        assert heads.replay_chains(chains, p, o, session.max_new_tokens, k) == step, (p, k)


@pytest.mark.parametrize("lookup_k", [2, 5])
def test_lookup_then_head_replays_the_live_loop_exactly(session, greedy, trained, lookup_k):
    from decoding.arms.lookup_head import LookupThenHead
    from decoding.specloop import PromptLookup

    head, _ = trained
    ids, outs = greedy
    target = StaticTarget(session.target.model, session.target.context_length)
    states = [h for h, _ in heads.hidden_states(session.target.model, [p + o for p, o in zip(ids, outs)])]
    many = heads.draft_chains_many(head, session.target.model, [(h.numpy(), p + o, len(p) - 1) for h, p, o in zip(states, ids, outs)], 3)
    for p, ref, chains in zip(ids, outs, many):
        drafter = LookupThenHead(PromptLookup(lookup_k, 2, session.eos_ids), heads.HeadDraft(head, session.target.model, 3))
        live = speculative_greedy(target, p, drafter, session.max_new_tokens, session.eos_ids)
        assert list(live.tokens) == ref
        replay = heads.replay_lookup_chains(chains, p, ref, session.max_new_tokens, 3, lookup_k, 2, session.eos_ids)
        assert (replay["target_calls"], replay["draft_tokens"], replay["draft_calls"]) == \
            (live.target_calls, live.draft_tokens, live.draft_calls), p


@pytest.fixture(scope="module")
def chains_with_confidence(session, greedy, trained):
    head, _ = trained
    ids, outs = greedy
    states = [h for h, _ in heads.hidden_states(session.target.model, [p + o for p, o in zip(ids, outs)])]
    many = heads.draft_chains_many(head, session.target.model, [(h.numpy(), p + o, len(p) - 1) for h, p, o in zip(states, ids, outs)],
                                   3, with_confidence=True)
    return states, many


def test_chains_confidence_is_the_heads_probability_of_each_drafted_token(session, greedy, trained, chains_with_confidence):
    import torch

    head, _ = trained
    ids, outs = greedy
    states, many = chains_with_confidence
    tokens, conf = many[0]
    assert tokens.shape == conf.shape and ((conf > 0) & (conf <= 1)).all()
    p, o, h = ids[0], outs[0], states[0]
    w = dense_weight(session.target.model.get_output_embeddings()).detach()[head.vocab].float()
    with torch.no_grad():
        x = head(h[len(p) - 1:len(p)].float(), session.target.model.get_input_embeddings()(torch.tensor([o[0]])).float())
        probs = torch.softmax(x @ w.T, -1)[0]
    assert int(head.vocab[int(probs.argmax())]) == tokens[0, 0]
    assert float(probs.max()) == pytest.approx(float(conf[0, 0]), rel=1e-5)
    plain = heads.draft_chains_many(head, session.target.model, [(h.numpy(), p + o, len(p) - 1)], 3)[0]
    assert np.array_equal(plain, tokens)


def test_a_confidence_gate_cuts_rounds_live_and_in_replay_alike(session, greedy, trained, chains_with_confidence):
    from decoding.arms.lookup_head import LookupThenHead
    from decoding.specloop import PromptLookup

    head, _ = trained
    ids, outs = greedy
    states, many = chains_with_confidence
    # a threshold inside the confidences seen, so that some rounds are cut and some are not
    threshold = float(np.median(np.concatenate([c.ravel() for _, c in many])))
    target = StaticTarget(session.target.model, session.target.context_length)
    cut = False
    for p, ref, (chains, conf) in zip(ids, outs, many):
        gated = speculative_greedy(target, p, heads.HeadDraft(head, session.target.model, 3, threshold), session.max_new_tokens,
                                   session.eos_ids)
        assert list(gated.tokens) == ref
        replay = heads.replay_chains(chains, p, ref, session.max_new_tokens, 3, conf, threshold)
        assert (replay["target_calls"], replay["draft_tokens"], replay["draft_calls"]) == \
            (gated.target_calls, gated.draft_tokens, gated.draft_calls), p
        ungated = heads.replay_chains(chains, p, ref, session.max_new_tokens, 3)
        cut = cut or replay["draft_tokens"] < ungated["draft_tokens"]
        drafter = LookupThenHead(PromptLookup(2, 2, session.eos_ids), heads.HeadDraft(head, session.target.model, 3, threshold))
        live = speculative_greedy(target, p, drafter, session.max_new_tokens, session.eos_ids)
        assert list(live.tokens) == ref
        replay = heads.replay_lookup_chains(chains, p, ref, session.max_new_tokens, 3, 2, 2, session.eos_ids, conf, threshold)
        assert (replay["target_calls"], replay["draft_tokens"], replay["draft_calls"]) == \
            (live.target_calls, live.draft_tokens, live.draft_calls), p
    assert cut  # the gate did drop tokens somewhere


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_a_confidence_threshold_outside_0_1_is_refused(session, trained, bad):
    with pytest.raises(ValueError, match=r"confidence threshold must be in \[0, 1\)"):
        heads.HeadDraft(trained[0], session.target.model, 3, bad)


def test_replaying_a_gate_without_confidences_is_refused(greedy):
    ids, outs = greedy
    with pytest.raises(ValueError, match="needs the chains' confidence"):
        heads.replay_chains(np.zeros((len(outs[0]), 3), dtype=np.int64), ids[0], outs[0], 64, 3, None, 0.5)


def test_prompt_rows_add_the_prompts_positions_labelled_with_the_targets_choice(session, greedy):
    ids, outs = greedy
    seqs = [p + o for p, o in zip(ids, outs)]
    got = heads.hidden_states(session.target.model, seqs)
    states, args = [h.numpy() for h, _ in got], [a.numpy() for _, a in got]
    plain = heads.collect_from_states(ids, outs, states)
    both = heads.collect_from_states(ids, outs, states, prompt_argmax=args)
    assert len(both.h) == len(plain.h) + sum(len(p) - 1 for p in ids)
    for g, (p, seq, arg) in enumerate(zip(ids, seqs, args)):
        mine = both.group == g
        # every row's label is the target's argmax after x_{t+1}; its input token is the text's
        assert np.array_equal(both.x_next2[mine], arg[1:len(seq) - 1])
        assert np.array_equal(both.x_next[mine], np.asarray(seq[1:len(seq) - 1]))
        assert np.array_equal(both.h_next[mine], states[g][1:len(seq) - 1].astype(np.float16))
    # the output's rows are the same rows either way
    out_rows = np.concatenate([np.flatnonzero(both.group == g)[len(p) - 1:] for g, p in enumerate(ids)])
    assert np.array_equal(both.x_next2[out_rows], plain.x_next2) and np.array_equal(both.h[out_rows], plain.h)


@pytest.mark.parametrize("total", [1, 2, 3, 10, 11, 20, 37])
def test_the_learning_rate_schedule_runs_at_any_length(total):
    # torch's OneCycleLR divides by zero when its warm-up is exactly one step (10 steps at 10%):
    # a head trained on 2,304-2,560 rows for one epoch hit it
    import torch

    layer = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    sched = heads.one_cycle(opt, 1e-3, total)
    for _ in range(total):
        opt.step()
        sched.step()
    assert 0 < sched.get_last_lr()[0] <= 1e-3


@pytest.mark.parametrize("min_count", [1, 2])
def test_datastore_then_head_replays_the_live_loop_exactly(session, greedy, trained, chains_with_confidence, min_count):
    """Kind ``datastore_head``'s drafter (a store's lookup, else the head) live against ``replay_first_chains``;
    the store holds the first half of each greedy output, so both of its paths run."""
    from decoding.arms.lookup_head import LookupThenHead
    from decoding.datastore import Datastore, DatastoreDraft

    head, _ = trained
    ids, outs = greedy
    _, many = chains_with_confidence
    store = Datastore([o[:len(o) // 2] for o in outs], max_ngram=3, max_chain=4)  # the first halves: the rest is the head's
    target = StaticTarget(session.target.model, session.target.context_length)
    from_store = head_calls = 0
    for p, ref, (chains, conf) in zip(ids, outs, many):
        drafter = LookupThenHead(DatastoreDraft(store, 4, min_count), heads.HeadDraft(head, session.target.model, 3, 0.2))
        live = speculative_greedy(target, p, drafter, session.max_new_tokens, session.eos_ids)
        assert list(live.tokens) == ref
        look = DatastoreDraft(store, 4, min_count)
        replay = heads.replay_first_chains(look.propose, chains, p, ref, session.max_new_tokens, 3, conf, 0.2)
        assert (replay["target_calls"], replay["draft_tokens"], replay["draft_calls"]) == \
            (live.target_calls, live.draft_tokens, live.draft_calls), p
        head_calls += live.draft_calls
        from_store += sum(bool(store.propose(p + ref[:i], 4, min_count)) for i in range(len(ref)))
    assert from_store > 0 and head_calls > 0
