"""Vowpal Wabbit policy: the text adapter as exact strings, learning, save/reload, export."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bandit.data import TrainingData
from bandit.policies.vw import (
    TINY_FEATURE,
    VWConfig,
    action_features,
    cb_label,
    cost_from_reward,
    example_lines,
    export_vw,
    shared_line,
    vw_token,
)
from logging_data.schema import Arm

vowpalwabbit = pytest.importorskip("vowpalwabbit")

ARMS = (
    Arm("none", kind="none"),
    Arm("tiny draft", kind="draft", cost=0.125, attrs={"family": "llama", "params_m": 135, "draft_tokens": 5}),
    Arm("lookup", kind="prompt_lookup", attrs={"draft_tokens": 10, "exact": True, "fuzzy": False}),
)


# -- the adapter, as strings ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "reward, cost",
    [(0.75, -0.75), (-2.5, 2.5), (0.0, 0.0), (-0.0, 0.0), (1.0, -1.0)],
)
def test_cost_is_minus_reward(reward, cost):
    got = cost_from_reward(reward)
    assert got == cost and repr(got) == repr(cost)  # never "-0.0"


def test_adapter_strings():
    assert cb_label(2, -0.75, 0.25) == "2:-0.75:0.25"
    assert cb_label(0, 0.0, 1.0) == "0:0.0:1.0"
    # propensities are written exactly, never rounded
    assert cb_label(1, 0.5, 1 / 3) == "1:0.5:0.3333333333333333"
    assert shared_line(np.array([0.5, 0.0, -1.25, 3.0], dtype=np.float32)) == "shared |s 0:0.5 2:-1.25 3:3.0"
    assert shared_line(np.array([0.1], dtype=np.float32)) == "shared |s 0:0.1"
    assert shared_line(np.zeros(3)) == "shared |s"
    assert shared_line(np.array([1e-31, -2e-28, 0.5], dtype=np.float32)) == "shared |s 1:-2e-28 2:0.5"
    assert vw_token("a b|c:d\te") == "a_b_c_d_e"
    assert action_features(ARMS[0]) == "|a arm=none kind=none cost:0.0"
    assert action_features(ARMS[1]) == "|a arm=tiny_draft kind=draft cost:0.125 draft_tokens:5 family=llama params_m:135"
    assert action_features(ARMS[2]) == "|a arm=lookup kind=prompt_lookup cost:0.0 draft_tokens:10 exact"


def test_example_lines_label_on_the_chosen_line_0_based():
    x = np.array([1.0, 0.0], dtype=np.float32)
    assert example_lines(x, ARMS, (1, cost_from_reward(0.8), 0.5)) == [
        "shared |s 0:1.0",
        "|a arm=none kind=none cost:0.0",
        "1:-0.8:0.5 |a arm=tiny_draft kind=draft cost:0.125 draft_tokens:5 family=llama params_m:135",
        "|a arm=lookup kind=prompt_lookup cost:0.0 draft_tokens:10 exact",
    ]
    assert example_lines(x, ARMS) == [
        "shared |s 0:1.0",
        "|a arm=none kind=none cost:0.0",
        "|a arm=tiny_draft kind=draft cost:0.125 draft_tokens:5 family=llama params_m:135",
        "|a arm=lookup kind=prompt_lookup cost:0.0 draft_tokens:10 exact",
    ]


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda: cb_label(-1, 0.0, 0.5), ValueError, r"0-based arm id"),
        (lambda: cb_label(0, 0.0, 0.0), ValueError, r"propensity must be in \(0, 1\]; got 0.0"),
        (lambda: cb_label(0, 0.0, 1.5), ValueError, r"propensity must be in \(0, 1\]; got 1.5"),
        (lambda: cb_label(0, float("nan"), 0.5), ValueError, r"cost must be finite"),
        (lambda: cost_from_reward(float("inf")), ValueError, r"reward must be finite"),
        (lambda: shared_line(np.zeros((2, 2))), ValueError, r"shape \(d,\)"),
        (lambda: shared_line(np.array([0.0, np.nan])), ValueError, r"column 1 is nan"),
        (lambda: example_lines(np.zeros(2), ARMS, (3, 0.0, 0.5)), ValueError, r"chosen arm id must be in \[0, 3\); got 3"),
        (lambda: VWConfig(cb_type="dm"), ValueError, r"cb_type must be one of ips, dr, mtr; got 'dm'"),
        (lambda: VWConfig(exploration="greedy"), ValueError, r"exploration must be one of"),
        (lambda: VWConfig(epsilon=1.5), ValueError, r"epsilon must be in \[0, 1\]"),
        (lambda: VWConfig(interactions=("sab",)), ValueError, r"pairs of namespace letters"),
        (lambda: VWConfig(full_information="everything"), ValueError, r"full_information must be one of"),
    ],
)
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_adapter_lines_are_what_vw_parses():
    ws = vowpalwabbit.Workspace("--cb_explore_adf -q sa --quiet")
    examples = ws.parse(example_lines(np.array([0.5, 0.0, 2.0], dtype=np.float32), ARMS, (2, -0.8, 0.25)))
    assert len(examples) == 1 + len(ARMS)
    shared, *actions = examples
    # VW marks the shared line with a probability of -1
    assert [c.probability for c in shared.get_label(vowpalwabbit.LabelType.CONTEXTUAL_BANDIT).costs] == [-1.0]
    labelled = [ex.get_label(vowpalwabbit.LabelType.CONTEXTUAL_BANDIT).costs for ex in actions]
    assert [len(c) for c in labelled] == [0, 0, 1]
    (label,) = labelled[2]
    assert (label.action, label.cost, label.probability) == (2, pytest.approx(-0.8), 0.25)
    # the shared line carries the two non-zero features in namespace s
    assert shared.num_features_in("s") == 2
    ws.finish_example(examples)


@pytest.fixture(scope="module")
def parser():
    # wrapped: hypothesis calls `setup_example` on a test's first argument when it has one, and
    # a Workspace does (a different method of the same name)
    ws = vowpalwabbit.Workspace("--cb_explore_adf -q sa --quiet")
    yield types.SimpleNamespace(ws=ws)
    ws.finish()


@settings(max_examples=60, deadline=None)
@given(x=arrays(np.float32, st.integers(1, 12), elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
@example(x=np.array([1.17279015e-30], dtype=np.float32))  # VW read this as 0
def test_shared_features_reach_vw(parser, x):
    """Every non-zero feature reaches VW under the hash of its column, with its float32 value.

    The text holds the float32 value exactly (shortest round-trip form), but VW's own number
    parser is not correctly rounded: 335545.75 reads back as 335545.71875 (found by this test),
    hence the relative tolerance of a few float32 ulps. It also reads magnitudes below ~1e-35 as
    0, and 1.17e-30 too (both found here), so the adapter leaves out values below 1e-28.
    """
    ws = parser.ws
    shared = ws.parse([shared_line(x), "|a arm=x"])[0]
    nonzero = np.flatnonzero(np.abs(x) >= TINY_FEATURE)
    assert shared.num_features_in("s") == nonzero.size
    space = ws.hash_space("s")
    got = {shared.feature("s", i): shared.feature_weight("s", i) for i in range(nonzero.size)}
    want = {ws.hash_feature(str(i), space): float(x[i]) for i in nonzero}
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=5e-7, atol=0)
    for i in nonzero:  # and the text itself is exact
        assert np.float32(shared_line(x).split()[2 + list(nonzero).index(i)].split(":")[1]) == x[i]


# -- learning ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cfg, feedback",
    [
        (VWConfig(cb_type="mtr", exploration="epsilon", epsilon=0.02), "full"),
        (VWConfig(cb_type="ips", exploration="softmax", softmax_lambda=20.0, full_information="sample_uniform", n_passes=5), "full"),
        (VWConfig(cb_type="dr", exploration="bag", bag_size=3, epsilon=0.02), "bandit"),
        (VWConfig(cb_type="mtr", exploration="cover", cover_size=3, epsilon=0.02), "bandit"),
    ],
)
def test_recovers_most_of_the_oracle(_learner_data, cfg, feedback):
    data = _learner_data.full if feedback == "full" else _learner_data.bandit
    policy = cfg.create(_learner_data.arms).fit(data)
    probs = policy.probabilities(_learner_data.test_features)
    assert probs.shape == (len(_learner_data.test_features), len(_learner_data.arms)) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert _learner_data.value(probs) >= 0.8 * _learner_data.oracle_value


def test_save_reload_in_a_fresh_workspace_gives_the_same_pmf(_learner_data, tmp_path):
    cfg = VWConfig(exploration="softmax", softmax_lambda=5.0, n_passes=1)
    policy = cfg.create(_learner_data.arms).fit(_learner_data.full)
    policy.save(tmp_path / "run")
    assert (tmp_path / "run" / "model.vw").stat().st_size > 0
    x = _learner_data.test_features[:50]
    expected = policy.probabilities(x)
    assert not np.allclose(expected, expected[:1])  # the pmf depends on the prompt
    # a bare VW workspace reading the model file alone gives the same pmf, in arm order
    bare = vowpalwabbit.Workspace(arg_list=["--quiet", "-i", str(tmp_path / "run" / "model.vw")])
    raw = np.array([bare.predict(example_lines(row, _learner_data.arms)) for row in x], dtype=np.float64)
    np.testing.assert_array_equal(raw / raw.sum(axis=1, keepdims=True), expected)
    loaded = cfg.load_policy(tmp_path / "run", _learner_data.arms)
    np.testing.assert_array_equal(loaded.probabilities(x), expected)
    # the reloaded model keeps learning online (decode loop --learn)
    loaded.learn_one(x[0], 0, reward=5.0, propensity=0.25)
    assert loaded.probabilities(x[:1])[0, 0] > expected[0, 0]
    with pytest.raises(ValueError, match="trained on arms"):
        cfg.load_policy(tmp_path / "run", _learner_data.arms[::-1])


def test_deterministic_under_a_seed(_learner_data):
    cfg = VWConfig(exploration="bag", bag_size=3, n_passes=1)
    x = _learner_data.test_features[:30]
    a = cfg.create(_learner_data.arms).fit(_learner_data.bandit).probabilities(x)
    b = cfg.create(_learner_data.arms).fit(_learner_data.bandit).probabilities(x)
    np.testing.assert_array_equal(a, b)


def test_learn_one_moves_the_policy_towards_a_rewarded_arm(_learner_data):
    policy = VWConfig(exploration="softmax", softmax_lambda=5.0, n_passes=1).create(_learner_data.arms).fit(_learner_data.bandit)
    x = _learner_data.test_features[:1]
    before = policy.probabilities(x)[0]
    worst = int(before.argmin())
    for _ in range(20):
        policy.learn_one(x[0], worst, reward=2.0, propensity=0.5)
    after = policy.probabilities(x)[0]
    assert after[worst] > before[worst]
    with pytest.raises(ValueError, match=r"propensity must be in \(0, 1\]"):
        policy.learn_one(x[0], 0, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"chosen arm id must be in \[0, 4\); got 4"):
        policy.learn_one(x[0], 4, 1.0, 0.5)
    with pytest.raises(ValueError, match=r"features must have shape \(8,\)"):
        policy.learn_one(x[0][:3], 0, 1.0, 0.5)


def test_rejects_features_wider_than_max(_learner_data):
    with pytest.raises(ValueError, match="VWConfig.max_features is 4"):
        VWConfig(max_features=4).create(_learner_data.arms).fit(_learner_data.full)


# -- export --------------------------------------------------------------------------------------
def _decisions(problem, n: int = 120) -> tuple[pd.DataFrame, np.ndarray]:
    b = problem.bandit
    names = np.array(problem.arms and [a.name for a in problem.arms])
    frame = pd.DataFrame(
        {
            "query_id": list(b.query_ids[:n]),
            "prompt": [f"prompt {i}" for i in range(n)],
            "arm": names[b.actions[:n]],
            "propensity": b.propensities[:n],
            "reward": b.observed[:n],
            "policy_id": "logger",
        }
    )
    return frame, b.features[:n]


def test_export_is_read_by_vws_own_parser(_learner_data, tmp_path):
    """The exported file trains, through VW's own ``-d`` file parser, the same model as our learn loop."""
    frame, x = _decisions(_learner_data)
    path = tmp_path / "log.vw"
    assert export_vw(frame, _learner_data.arms, x, path) == len(frame)
    text = path.read_text()
    blocks = text.strip("\n").split("\n\n")
    assert len(blocks) == len(frame)
    first = frame.iloc[0]
    chosen = [a.name for a in _learner_data.arms].index(first["arm"])
    assert blocks[0].split("\n") == example_lines(x[0], _learner_data.arms, (chosen, -first["reward"], first["propensity"]))

    args = VWConfig(exploration="softmax", softmax_lambda=5.0).vw_args()
    from_file = vowpalwabbit.Workspace(arg_list=args + ["-d", str(path)])
    by_hand = vowpalwabbit.Workspace(arg_list=args)
    for block in blocks:
        by_hand.learn(block.split("\n"))
    probe = [example_lines(row, _learner_data.arms) for row in _learner_data.test_features[:20]]
    p_file = np.array([from_file.predict(e) for e in probe])
    p_hand = np.array([by_hand.predict(e) for e in probe])
    np.testing.assert_array_equal(p_file, p_hand)
    assert not np.allclose(p_file, 1 / len(_learner_data.arms))  # it learned something


def test_export_outcomes_uses_uniform_propensities_and_a_featurizer(tmp_path):
    outcomes = pd.DataFrame(
        {
            "query_id": ["q1", "q1", "q1", "q2", "q2"],
            "prompt": ["ab", "ab", "ab", "c", "c"],
            "arm": ["none", "tiny draft", "lookup", "none", "lookup"],
            "reward": [0.0, 0.5, 0.25, 0.0, 1.0],
        }
    )

    class Length:  # a featurizer: transform(texts) -> float32 (n, 1)
        def transform(self, texts):
            return np.array([[len(t)] for t in texts], dtype=np.float32)

    path = tmp_path / "out.vw"
    assert export_vw(outcomes, ARMS, Length(), path) == 5
    blocks = path.read_text().strip("\n").split("\n\n")
    assert blocks[1].split("\n")[0] == "shared |s 0:2.0"
    assert blocks[1].split("\n")[2].startswith("1:-0.5:0.3333333333333333 |a arm=tiny_draft")
    assert blocks[4].split("\n")[0] == "shared |s 0:1.0"
    assert blocks[4].split("\n")[3].startswith("2:-1.0:0.5 |a arm=lookup")


@pytest.mark.parametrize(
    "change, pattern",
    [
        (lambda f: f.assign(arm=["nope"] + list(f["arm"][1:])), r"arm must be one of none, tiny draft, lookup; 1 rows are not \(first: query_id=q1, arm='nope'\)"),
        (lambda f: f.assign(propensity=[0.0] + list(f["propensity"][1:])), r"propensity must be in \(0, 1\]; 1 rows are not \(first: query_id=q1\)"),
        (lambda f: f.assign(reward=[np.nan] + list(f["reward"][1:])), r"reward must be finite; 1 rows are not"),
        (lambda f: f.drop(columns=["reward"]), r"must have a 'reward' column"),
    ],
)
def test_export_bad_input_leaves_an_existing_file_alone(tmp_path, change, pattern):
    frame = pd.DataFrame({"query_id": ["q1", "q2"], "prompt": ["a", "b"], "arm": ["none", "lookup"], "propensity": [0.5, 0.5], "reward": [1.0, 0.0]})
    path = tmp_path / "log.vw"
    path.write_text("previous export\n")
    with pytest.raises(ValueError, match=pattern):
        export_vw(change(frame), ARMS, np.ones((2, 2)), path)
    assert path.read_text() == "previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["log.vw"]


def test_export_needs_a_feature_row_per_query(tmp_path):
    frame = pd.DataFrame({"query_id": ["q1"], "prompt": ["a"], "arm": ["none"], "propensity": [1.0], "reward": [1.0]})
    with pytest.raises(ValueError, match=r"features must have shape \(n_queries, d\) = \(1, d\); got shape \(2, 2\)"):
        export_vw(frame, ARMS, np.ones((2, 2)), tmp_path / "x.vw")
    with pytest.raises(ValueError, match=r"no row for 1 query ids of the table \(first: q1\)"):
        export_vw(frame, ARMS, np.ones((1, 2)), tmp_path / "x.vw", query_ids=["other"])
