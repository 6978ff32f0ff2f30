"""LoggedBatch: validation of every field (table-driven), immutability, no mutation of inputs."""

from __future__ import annotations

import numpy as np
import pytest

from estimators import BatchError, LoggedBatch

N, K = 4, 3


def good(**change):
    fields = dict(
        actions=np.array([0, 1, 2, 1]),
        rewards=np.array([0.1, 0.5, 0.9, 0.3]),
        propensities=np.array([0.5, 0.25, 0.25, 0.25]),
        target_probs=np.full((N, K), 1 / 3),
        reward_hat=None,
    )
    fields.update(change)
    return fields


def _with(arr, row, value):
    arr = np.array(arr, dtype=float)
    arr[row] = value
    return arr


BAD = [
    (good(propensities=_with([0.5] * N, 2, 0.0)), r"`propensities` must be in \(0, 1\]; 1 row\(s\) are not \(first: row 2, value 0\.0\)"),
    (good(propensities=_with([0.5] * N, 1, 1.5)), r"`propensities` must be in \(0, 1\].*first: row 1, value 1\.5"),
    (good(propensities=_with([0.5] * N, 3, -0.2)), r"`propensities`.*first: row 3"),
    (good(propensities=_with([0.5] * N, 0, np.nan)), r"`propensities` must be in \(0, 1\].*first: row 0, value nan"),
    (good(rewards=_with([0.5] * N, 1, np.nan)), r"`rewards` must be finite; 1 row\(s\) hold NaN or inf \(first: row 1"),
    (good(rewards=_with([0.5] * N, 2, np.inf)), r"`rewards` must be finite.*first: row 2"),
    (good(target_probs=_with(np.full((N, K), 1 / 3), 2, [0.5, 0.5, 0.5])), r"`target_probs` rows must sum to 1; 1 row\(s\) do not \(first: row 2, sums to 1\.5"),
    (good(target_probs=_with(np.full((N, K), 1 / 3), 1, [1.2, -0.2, 0.0])), r"`target_probs` entries must be in \[0, 1\].*first: row 1"),
    (good(target_probs=_with(np.full((N, K), 1 / 3), 3, [np.nan, 0.5, 0.5])), r"`target_probs` must be finite.*first: row 3"),
    (good(target_probs=np.full((N + 1, K), 1 / 3)), r"`target_probs` must have 4 rows like `actions`; got shape \(5, 3\)"),
    (good(target_probs=np.full(N, 1.0)), r"`target_probs` must have shape \(n, n_arms\); got shape \(4,\)"),
    (good(rewards=np.zeros(N + 2)), r"`rewards` must have shape \(4,\) like `actions`; got \(6,\)"),
    (good(propensities=np.full(N - 1, 0.5)), r"`propensities` must have shape \(4,\)"),
    (good(actions=np.array([0, 1, 3, 1])), r"`actions` must be in \[0, 3\).*first: row 2, value 3"),
    (good(actions=np.array([0, -1, 2, 1])), r"`actions` must be in \[0, 3\).*first: row 1, value -1"),
    (good(actions=np.array([0.0, 1.5, 2.0, 1.0])), r"`actions` must be integer arm ids; row 1 holds 1\.5"),
    (good(actions=np.array([0.0, np.nan, 2.0, 1.0])), r"`actions` must be integer arm ids; row 1 is NaN"),
    (good(actions=np.array([[0, 1], [2, 1]])), r"`actions` must have shape \(n,\); got shape \(2, 2\)"),
    (good(reward_hat=np.zeros((N, K + 1))), r"`reward_hat` must have shape \(n, n_arms\) = \(4, 3\) like `target_probs`; got \(4, 4\)"),
    (good(reward_hat=_with(np.zeros((N, K)), 2, [0.0, np.nan, 0.0])), r"`reward_hat` must be finite.*first: row 2"),
    (good(actions=np.array([], dtype=int), rewards=np.array([]), propensities=np.array([]), target_probs=np.zeros((0, K))), r"at least one row"),
    (good(rewards=["a", "b", "c", "d"]), r"`rewards` must be convertible to float64"),
]


@pytest.mark.parametrize("fields, pattern", BAD, ids=[p[:40] for _, p in BAD])
def test_bad_input_names_the_field_and_first_row(fields, pattern):
    with pytest.raises(BatchError, match=pattern):
        LoggedBatch(**fields)


def test_batch_error_is_a_value_error():
    assert issubclass(BatchError, ValueError)


def test_valid_batch_stores_read_only_copies_and_leaves_inputs_alone():
    fields = good(reward_hat=np.zeros((N, K)))
    actions = fields["actions"]
    batch = LoggedBatch(**fields)
    assert batch.actions.dtype == np.int64 and batch.rewards.dtype == np.float64
    assert batch.n == N and batch.n_arms == K
    with pytest.raises(ValueError):
        batch.rewards[0] = 10.0
    actions[0] = 2  # the caller's array stays writeable and the batch keeps its copy
    assert batch.actions[0] == 0
    assert fields["rewards"].flags.writeable


def test_weights_are_target_over_propensity():
    batch = LoggedBatch(**good())
    np.testing.assert_allclose(batch.weights, (1 / 3) / np.array([0.5, 0.25, 0.25, 0.25]))
    np.testing.assert_array_equal(batch.target_prob_logged, np.full(N, 1 / 3))


def test_rows_summing_to_one_within_float_rounding_are_accepted():
    probs = np.full((N, K), 1 / 3) + 1e-9
    LoggedBatch(**good(target_probs=probs))


def test_take_and_with_helpers_revalidate():
    batch = LoggedBatch(**good())
    sub = batch.take(np.array([3, 0]))
    np.testing.assert_array_equal(sub.actions, [1, 0])
    with pytest.raises(BatchError, match="reward_hat"):
        batch.with_reward_hat(np.zeros((N, K + 2)))
    with pytest.raises(BatchError, match="target_probs"):
        batch.with_target(np.zeros((N, K)))
