"""Alignment metrics on hand-checked token sequences, properties, and the prompt-lookup replay."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding.alignment import (
    Verification,
    alignment_metrics,
    lcs_length,
    prompt_lookup_candidates,
    simulate_blocks,
    simulate_prompt_lookup,
)

# (arm, target, k, prefix, position, lcs, accept), each checked by hand (see the comments)
CASES = [
    # blocks k=3: [1,2,|9] accepts 2, target emits 3; then only 2 tokens may be proposed before
    # the target's last one: [4,5] accepted, target emits 6 -> 4/5
    ([1, 2, 9, 4, 5, 6], [1, 2, 3, 4, 5, 6], 3, 2 / 6, 5 / 6, 5 / 6, 4 / 5),
    # blocks k=2: [1,2] accepted, target emits 3; [4,5] accepted, target emits 6 -> 4/4
    ([1, 2, 9, 4, 5, 6], [1, 2, 3, 4, 5, 6], 2, 2 / 6, 5 / 6, 5 / 6, 1.0),
    # arm shorter: block [1,(missing)] accepts 1 of 2, target emits 2, then emits 3 alone -> 1/2
    ([1], [1, 2, 3], 2, 1 / 3, 1 / 3, 1 / 3, 1 / 2),
    # shifted by one: subsequence 1,2,3 survives, positions never agree, no block accepted (3+2+1 proposed)
    ([5, 1, 2, 3], [1, 2, 3, 4], 4, 0.0, 0.0, 0.75, 0.0),
    # identical
    ([3, 3, 3], [3, 3, 3], 2, 1.0, 1.0, 1.0, 1.0),
    # longer arm than target: extra tokens do not count
    ([1, 2, 3, 4, 5], [1, 2], 4, 1.0, 1.0, 1.0, 1.0),
    # empty target: 1.0 only when the arm is empty too
    ([], [], 3, 1.0, 1.0, 1.0, 1.0),
    ([1], [], 3, 0.0, 0.0, 0.0, 0.0),
]


@pytest.mark.parametrize("arm,target,k,prefix,position,lcs,accept", CASES)
def test_metrics_on_hand_checked_sequences(arm, target, k, prefix, position, lcs, accept):
    m = alignment_metrics(arm, target, k)
    assert m == pytest.approx({"align_prefix": prefix, "align_position": position, "align_lcs": lcs, "align_accept": accept})


def test_block_simulation_counts():
    # first case above: 2 blocks, 3 + 2 proposed, 2 + 2 accepted
    assert simulate_blocks([1, 2, 9, 4, 5, 6], [1, 2, 3, 4, 5, 6], 3) == Verification(proposed=5, accepted=4, target_calls=2)
    # a one-token target: nothing to propose; align_accept falls back to position agreement
    assert simulate_blocks([4], [4], 3) == Verification(proposed=0, accepted=0, target_calls=1)
    assert alignment_metrics([4], [4], 3)["align_accept"] == 1.0 and alignment_metrics([5], [4], 3)["align_accept"] == 0.0
    with pytest.raises(ValueError, match="block size k must be >= 1; got 0"):
        simulate_blocks([1], [1], 0)


def test_lcs_hand_checked():
    assert lcs_length([1, 3, 4, 1, 2, 1, 3], [3, 4, 1, 2, 1, 3]) == 6
    assert lcs_length([1, 2, 3], [3, 2, 1]) == 1
    assert lcs_length([], [1]) == 0


def test_prompt_lookup_candidates_hand_checked():
    # the last bigram (7, 8) first occurs at 0 -> propose what followed it: 9, 7, 8
    assert prompt_lookup_candidates([7, 8, 9, 7, 8], 3) == [9, 7, 8]
    # bigram (8, 9) unseen before -> unigram 9 seen at 2 -> propose 5, 9 (k=2)
    assert prompt_lookup_candidates([1, 9, 5, 9, 8, 9], 2) == [5, 9]
    # nothing repeats -> no candidates
    assert prompt_lookup_candidates([1, 2, 3], 4) == []
    # candidates are cut before EOS (2)
    assert prompt_lookup_candidates([7, 8, 9, 2, 7, 8], 3, eos=[2]) == [9]


def test_prompt_lookup_replay_hand_checked():
    # step 1: context 7 8 9 7 8 proposes 9 7 8, all accepted, target emits 9;
    # step 2: context ... 8 9 proposes 7 8 9, target says 2 (EOS): 6 proposed, 3 accepted, 2 passes
    v = simulate_prompt_lookup([7, 8, 9, 7, 8], [9, 7, 8, 9, 2], num_output_tokens=3, max_new_tokens=10, eos=[2])
    assert v == Verification(proposed=6, accepted=3, target_calls=2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=12), st.lists(st.integers(0, 4), min_size=1, max_size=12), st.integers(1, 5))
def test_metric_properties(arm, target, k):
    m = alignment_metrics(arm, target, k)
    assert all(0.0 <= v <= 1.0 for v in m.values())
    assert m["align_prefix"] <= m["align_position"] <= m["align_lcs"]
    v = simulate_blocks(arm, target, k)
    # every target pass emits exactly one token of its own
    assert v.accepted + v.target_calls == len(target)
    assert alignment_metrics(target, target, k) == {"align_prefix": 1.0, "align_position": 1.0, "align_lcs": 1.0, "align_accept": 1.0}


def test_prompt_lookup_replay_matches_measured_assisted_decoding(session):
    arm = session.config.arm("lookup")
    for prompt in ["the cat sat on the mat and the dog sat on the", "def add ( a , b ) : return a + b def add ("]:
        ids = session.encode(prompt)
        out = session.assisted(ids, arm)
        v = simulate_prompt_lookup(ids, out.tokens, arm.prompt_lookup_num_tokens, session.max_new_tokens, eos=session.eos_ids)
        assert (v.proposed, v.accepted, v.target_calls) == (out.draft_tokens, out.accepted_tokens, out.target_calls)
