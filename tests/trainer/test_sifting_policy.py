"""RelativeProbabilisticPolicy: the numpy CPU path, the torch path and grouping agree."""

import numpy as np
import pytest
import torch
from trainspec.trainer import sifting


def _batches(seed, sizes):
    g = torch.Generator().manual_seed(seed)
    # Rounded so that ties (with the history and within a batch) are common.
    return [torch.rand(n, generator=g).mul(8).round() for n in sizes]


def _policy(beta, history):
    return sifting.RelativeProbabilisticPolicy(beta, history, torch.Generator().manual_seed(11))


@pytest.mark.parametrize(
    ("beta", "history", "sizes"),
    [
        (1.0, 50, [16] * 12),
        (3.0, 7, [5, 9, 3, 12, 1, 8]),  # a history shorter than some batches
        (0.5, 100, [64, 64, 17, 64]),  # filling up, then wrapping around
    ],
)
def test_grouped_numpy_and_torch_paths_make_the_same_choices(beta, history, sizes):
    batches = _batches(int(beta * 10), sizes)
    one_by_one = _policy(beta, history)
    masks = torch.cat([one_by_one.keep_mask(b) for b in batches])

    torch_path = _policy(beta, history)
    on_torch = torch.cat([torch_path._keep_device(b) for b in batches])

    grouped = _policy(beta, history)
    index = torch.cat(
        [grouped.keep_index(batches[i : i + 3]) + sum(sizes[:i]) for i in range(0, len(sizes), 3)]
    )

    assert torch.equal(masks, on_torch)
    assert torch.equal(masks.nonzero().flatten(), index)
    assert 0 < int(masks.sum()) < len(masks)  # a real choice was made
    # The three end with the same history, oldest first.
    order = [
        torch.cat([p._history[p._pos : p._filled], p._history[: p._pos]])
        for p in (one_by_one, torch_path, grouped)
    ]
    assert torch.equal(order[0], order[1]) and torch.equal(order[0], order[2])


def test_keep_probability_is_percentile_to_the_beta():
    # A fixed history of 0..999 and queries at known percentiles: each is kept with
    # probability percentile**beta, estimated over many draws.
    beta, n = 2.0, 4000
    policy = _policy(beta, 1000)
    policy.keep_mask(torch.arange(1000, dtype=torch.float32))
    kept = np.zeros(3)
    for _ in range(n):
        history = policy._history_np.copy()
        mask = policy._keep_cpu([np.array([249.5, 499.5, 899.5], dtype=np.float32)])
        policy._history_np[:] = history  # keep the history fixed
        policy._pos, policy._filled = 0, 1000
        kept += mask
    # In the window (the 3 oldest entries replaced by the queries) each ranks at about
    # 0.25, 0.5 and 0.9.
    expected = np.array([0.25, 0.5, 0.9]) ** beta
    assert np.all(np.abs(kept / n - expected) < 0.03)


def test_a_nan_loss_is_kept():
    policy = _policy(3.0, 100)
    policy.keep_mask(torch.rand(100))
    losses = torch.rand(10)
    losses[3] = float("nan")
    assert bool(policy.keep_mask(losses)[3])
