"""decoding.datastore and the ``datastore`` arm kind: the table against a brute-force reading of the
corpus, its gates, its files (their refusals: test_artifact_schemas.py), and its replayed counts against the live loop."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding.datastore import Datastore, DatastoreDraft, load_datastore, replay_datastore


def _brute(sequences, context, k, min_count=1, min_fraction=0.0, max_ngram=8, max_chain=8):
    """What a store proposes, read straight off the sequences (no table)."""
    for n in range(min(max_ngram, len(context)), 0, -1):
        key = list(context[len(context) - n:])
        left = [(i, e + 1) for i, s in enumerate(sequences) for e in range(n - 1, len(s)) if s[e - n + 1:e + 1] == key]
        if not left:
            continue
        out = []
        for _ in range(min(k, max_chain)):
            counts = Counter(sequences[i][p] for i, p in left if p < len(sequences[i]))
            if not counts:
                break
            token, count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            if count < min_count or count < min_fraction * len(left):
                break
            out.append(token)
            left = [(i, p + 1) for i, p in left if p < len(sequences[i]) and sequences[i][p] == token]
        return out
    return []


def test_ground_truth_on_a_small_corpus():
    store = Datastore([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4, 9], [7, 1, 2, 6]], max_ngram=3, max_chain=4)
    # after "2": 3 three times of four, then 4 twice of three
    assert store.chain([2]) == ((3, 3, 4), (4, 2, 3), (9, 1, 2))
    assert store.propose([0, 2], 4) == [3, 4, 9]
    assert store.propose([0, 2], 4, min_count=2) == [3, 4]
    assert store.propose([0, 2], 4, min_fraction=0.7) == [3]
    assert store.propose([0, 2], 1) == [3]
    # the longest match decides: "7 1 2" occurs once (then 6), although "1 2" mostly goes on with 3
    assert store.propose([7, 1, 2], 4) == [6] and store.propose([5, 1, 2], 4) == [3, 4, 9]
    assert store.propose([7, 1, 2], 4, min_count=2) == []  # cut at once: shorter n-grams are not tried
    assert store.propose([42], 4) == [] and store.propose([], 4) == []
    assert store.propose([4], 4) == [9]  # a chain stops at a sequence's end, never runs into the next one
    assert store.chain([5]) == () and store.n_tokens == 17


def test_ties_go_to_the_smaller_token_id():
    store = Datastore([[1, 9], [1, 8], [1, 9], [1, 8]])
    assert store.chain([1]) == ((8, 2, 4),)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=12), min_size=1, max_size=6),
       st.lists(st.integers(0, 5), min_size=1, max_size=6), st.integers(1, 6), st.integers(1, 3), st.sampled_from([0.0, 0.4, 0.7]),
       st.integers(1, 4), st.integers(1, 5))
def test_propose_matches_a_brute_force_reading(sequences, context, k, min_count, min_fraction, max_ngram, max_chain):
    store = Datastore(sequences, max_ngram=max_ngram, max_chain=max_chain)
    got = store.propose(context, k, min_count, min_fraction)
    assert got == _brute(sequences, context, k, min_count, min_fraction, max_ngram, max_chain)
    assert len(got) <= min(k, max_chain)
    assert got[:len(store.propose(context, k, min_count + 1, min_fraction))] == store.propose(context, k, min_count + 1, min_fraction)


def test_files_round_trip(tmp_path):
    store = Datastore([[3, 4, 5], [], [3, 4, 6, 7]], max_ngram=2, max_chain=3)
    folder = store.save(tmp_path / "s", record={"domain": "code"})
    back = load_datastore(folder)
    assert back.sequences == store.sequences and (back.max_ngram, back.max_chain) == (2, 3)
    for ctx in ([3], [3, 4], [4, 6], [9]):
        assert back.propose(ctx, 3) == store.propose(ctx, 3)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_ngram >= 1 and max_chain >= 1; got 0 and 8"):
        Datastore([[1]], max_ngram=0)
    with pytest.raises(ValueError, match="token ids must be >= 0; got -1"):
        Datastore([[1, -1]])
    with pytest.raises(ValueError, match=r"min_fraction in \[0, 1\]; got 3, 1, 1.5"):
        DatastoreDraft(Datastore([[1]]), 3, 1, 1.5)


@pytest.mark.parametrize("settings_toml, pattern", [
    ("", r"kind 'datastore' needs `datastore`"),
    ('datastore = "s"\nmin_fraction = 1.5\n', r"`min_fraction` must be in \[0, 1\]; got 1.5"),
    ('datastore = "s"\nmin_count = 0\n', r"`min_count` must be an integer >= 1; got 0"),
    ('datastore = "s"\nhead = "h"\n', r"'head' do not apply to kind 'datastore'"),
])
def test_the_arm_settings_are_checked(toml_for, settings_toml, pattern):
    from decoding.models import ModelsConfigError, parse_models_config

    with pytest.raises(ModelsConfigError, match=pattern):
        parse_models_config(toml_for(f'[[arms]]\nname = "s"\nkind = "datastore"\n{settings_toml}'))


def test_a_missing_store_is_named_with_its_arm(tiny_config, tmp_path):
    from decoding.loading import ModelLoadError
    from decoding.models import ArmConfig
    from decoding.session import DecodingSession

    config = tiny_config([ArmConfig.of("s", "datastore", datastore=str(tmp_path / "nowhere"))])
    with pytest.raises(ModelLoadError, match=r"arm 's': cannot load the datastore at .*nowhere: .*no such folder"):
        DecodingSession(config)


@pytest.mark.parametrize("gates", [{}, {"min_count": 2, "min_fraction": 0.5}])
def test_replayed_counts_are_the_live_loops(tiny_config, tiny_models, gates):
    """Live decoding of the arm through the project's loop against its replay on the greedy output:
    same output as plain greedy, exactly the same counts; the log records its gates."""
    from decoding.models import ArmConfig
    from decoding.session import DecodingSession

    config = tiny_config([ArmConfig.of("s", "datastore", datastore=tiny_models["datastore"], num_assistant_tokens=3, **gates)],
                         max_new_tokens=12)
    session = DecodingSession(config, threads=1)
    arm = config.arm("s")
    assert config.to_log_arms()[-1].attrs.get("min_count") == (2 if gates else None)
    proposed = 0
    for prompt in ["the quick brown fox jumps over the lazy dog", "def add ( a , b ) : return", "a b c a b c"]:
        ids = session.encode(prompt)
        ref = session.plain(ids)
        live = session.looped(ids, arm, reference=ref.tokens)
        rep = replay_datastore(session.drafter(arm), ids, ref.tokens, session.max_new_tokens)
        assert live.lossless is True
        assert (live.target_calls, live.draft_tokens, live.draft_calls, live.accepted_tokens) == \
            (rep["target_calls"], rep["draft_tokens"], rep["draft_calls"], rep["accepted_tokens"])
        proposed += rep["draft_tokens"]
    assert proposed > 0  # the store matched somewhere: the counts compared are not all zero
