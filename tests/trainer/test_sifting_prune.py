"""PruningDataloader: no scoring pass, pruning by last loss, re-weighting, annealing, random."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from trainspec.trainer import sifting


class _Indexed(Dataset):
    """Sample i is (i, a fixed per-sample loss), so the test controls every loss."""

    def __init__(self, n):
        self.loss = torch.linspace(0.0, 1.0, n)

    def __len__(self):
        return len(self.loss)

    def __getitem__(self, i):
        return i, self.loss[i]


def _epochs(loader, n_epochs):
    out = []
    for _ in range(n_epochs):
        ids, weighted = [], []
        for idx, loss in loader:
            per_sample = loss.clone().requires_grad_()
            reported = loader.report(per_sample)
            reported.backward()
            # d(reported)/d(loss_i) * batch = the weight given to sample i.
            weighted += (per_sample.grad * len(idx)).tolist()
            ids += idx.tolist()
        out.append((ids, weighted))
    return out


def test_prune_keeps_high_loss_reweights_low_loss_and_anneals():
    n = 1000
    data = DataLoader(_Indexed(n), batch_size=64, shuffle=True)
    loader = sifting.PruningDataloader(
        sifting.PruneConfig(keep_fraction=0.7, anneal_fraction=0.25), data, epochs=4, seed=0
    )
    assert loader.anneal_epochs == 1
    epochs = _epochs(loader, 4)
    first, second, third, last = (set(ids) for ids, _ in epochs)
    assert first == set(range(n)) and last == set(range(n))  # warm-up and annealing
    for ids, weights in epochs[1:3]:
        assert len(ids) == len(set(ids)) == 700
        dropped = set(range(n)) - set(ids)
        # 500 samples are below the mean loss; the pool widens to twice the 300 dropped.
        pool = 600
        assert max(dropped) < pool
        by_id = dict(zip(ids, weights, strict=True))
        # Kept low-loss samples carry 1/(their keep probability), the others 1, all scaled
        # by the kept fraction so the weights average 1 over the kept samples.
        assert all(abs(by_id[i] - 0.7 * pool / (pool - 300)) < 1e-4 for i in ids if i < pool)
        assert all(abs(by_id[i] - 0.7) < 1e-6 for i in ids if i >= pool)
        assert abs(sum(weights) / len(weights) - 1.0) < 1e-4
    assert second != third  # a fresh random choice each epoch
    assert [s.kept_fraction for s in loader.epoch_stats] == [1.0, 0.7, 0.7, 1.0]
    assert loader.epoch_stats[1].samples_scored == 0  # no scoring pass


def test_reweighting_keeps_the_loss_unbiased():
    n = 2000
    data = DataLoader(_Indexed(n), batch_size=n)
    full = _Indexed(n).loss.mean().item()
    means = []
    for seed in range(30):
        loader = sifting.PruningDataloader(
            sifting.PruneConfig(keep_fraction=0.6), data, epochs=10, seed=seed
        )
        for epoch in range(2):
            for _idx, loss in loader:
                reported = loader.report(loss)
                if epoch == 1:  # a pruned epoch: one batch holds all kept samples
                    means.append(reported.item())
    assert abs(sum(means) / len(means) - full) < 0.01


def test_random_drop_is_uniform_and_unweighted():
    n = 1000
    loader = sifting.PruningDataloader(
        sifting.RandomDropConfig(keep_fraction=0.25),
        DataLoader(_Indexed(n), batch_size=100, shuffle=True),
        seed=0,
    )
    epochs = _epochs(loader, 2)
    for ids, weights in epochs:
        assert len(ids) == len(set(ids)) == 250
        assert all(abs(w - 1.0) < 1e-6 for w in weights)
        assert abs(sum(ids) / len(ids) - n / 2) < 80  # not biased toward either end
    assert set(epochs[0][0]) != set(epochs[1][0])
    assert len(loader) == 3


def test_unreported_samples_are_never_pruned_and_report_is_checked():
    loader = sifting.PruningDataloader(
        sifting.PruneConfig(keep_fraction=0.5), DataLoader(_Indexed(100), batch_size=10), seed=0
    )
    for _ in loader:  # nothing reported: no loss is known
        pass
    assert len([1 for _ in loader]) == 10
    with pytest.raises(RuntimeError, match="before a batch"):
        loader.report(torch.zeros(10))
    for _idx, loss in loader:
        with pytest.raises(ValueError, match=r"expected \(10,\)"):
            loader.report(loss[:3])
        break


def test_prune_seeded_training_is_reproducible():
    def run(seed):
        torch.manual_seed(seed)
        x = torch.randn(600, 5)
        y = (x[:, 0] > 0).long()
        model = torch.nn.Linear(5, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        ds = torch.utils.data.TensorDataset(x, y)
        loader = sifting.PruningDataloader(
            sifting.PruneConfig(keep_fraction=0.5),
            DataLoader(ds, batch_size=32, shuffle=True),
            model,
            epochs=3,
        )
        for _ in range(3):
            for bx, by in loader:
                loss = loader.report(F.cross_entropy(model(bx), by, reduction="none"))
                opt.zero_grad()
                loss.backward()
                opt.step()
        return model.weight.detach().clone()

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))
