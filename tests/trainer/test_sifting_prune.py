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


@pytest.mark.parametrize("reweight", ["step", "epoch"])
def test_prune_keeps_high_loss_reweights_low_loss_and_anneals(reweight):
    n = 1000
    data = DataLoader(_Indexed(n), batch_size=64, shuffle=True)
    loader = sifting.PruningDataloader(
        sifting.PruneConfig(
            rule="quota", keep_fraction=0.7, anneal_fraction=0.25, reweight=reweight
        ),
        data,
        epochs=4,
        seed=0,
    )
    assert loader.anneal_epochs == 1
    epochs = _epochs(loader, 4)
    first, second, third, last = (set(ids) for ids, _ in epochs)
    assert first == set(range(n)) and last == set(range(n))  # warm-up and annealing
    for _ids, weights in (epochs[0], epochs[3]):
        assert all(abs(w - 1.0) < 1e-6 for w in weights)  # full epochs: plain mean
    # Kept low-loss samples carry 1/(their keep probability), the others 1; with
    # reweight="step" all are scaled by the kept fraction, so they average 1 per sample.
    scale = 0.7 if reweight == "step" else 1.0
    for ids, weights in epochs[1:3]:
        assert len(ids) == len(set(ids)) == 700
        dropped = set(range(n)) - set(ids)
        # 500 samples are below the mean loss; the pool widens to twice the 300 dropped.
        pool = 600
        assert max(dropped) < pool
        by_id = dict(zip(ids, weights, strict=True))
        assert all(abs(by_id[i] - scale * pool / (pool - 300)) < 1e-4 for i in ids if i < pool)
        assert all(abs(by_id[i] - scale) < 1e-6 for i in ids if i >= pool)
        # Summed over the epoch, the weights count the whole data ("epoch") or the kept part.
        assert abs(sum(weights) - (700 if reweight == "step" else n)) < 0.1
    assert second != third  # a fresh random choice each epoch
    assert [s.kept_fraction for s in loader.epoch_stats] == [1.0, 0.7, 0.7, 1.0]
    assert loader.epoch_stats[1].samples_scored == 0  # no scoring pass


@pytest.mark.parametrize("reweight", ["step", "epoch"])
def test_reweighting_keeps_the_loss_unbiased(reweight):
    n = 2000
    data = DataLoader(_Indexed(n), batch_size=n)
    full = _Indexed(n).loss.mean().item()
    means = []
    for seed in range(30):
        loader = sifting.PruningDataloader(
            sifting.PruneConfig(rule="quota", keep_fraction=0.6, reweight=reweight),
            data,
            epochs=10,
            seed=seed,
        )
        for epoch in range(2):
            for _idx, loss in loader:
                reported = loader.report(loss)
                if epoch == 1:  # a pruned epoch: one batch holds all kept samples
                    means.append(reported.item())
    # "step": each step's weighted mean estimates the full mean; "epoch": the epoch's
    # weighted sum estimates the full sum (InfoBatch), so the mean is 1/0.6 larger.
    expected = full if reweight == "step" else full / 0.6
    assert abs(sum(means) / len(means) - expected) < 0.01


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
        sifting.PruneConfig(rule="quota", keep_fraction=0.5),
        DataLoader(_Indexed(100), batch_size=10),
        epochs=4,
        seed=0,
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
            sifting.PruneConfig(rule="quota", keep_fraction=0.5),
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


def test_losses_are_recorded_once_per_epoch_and_an_early_stop_keeps_them():
    n = 100
    loader = sifting.PruningDataloader(
        sifting.PruneConfig(rule="quota", keep_fraction=0.5),
        DataLoader(_Indexed(n), batch_size=10),
        epochs=4,
        seed=0,
    )
    for i, (_idx, loss) in enumerate(loader):
        loader.report(loss * 0 + 5.0)
        loader.report(loss)  # a second report for the same batch replaces the first
        if i == 4:
            break  # stopped early: the 50 reported losses are kept
    table = loader._losses
    assert torch.equal(table[:50], _Indexed(n).loss[:50])
    assert bool(table[50:].isnan().all())
    # Only samples with a known loss can be pruned: the 50 unknown ones all stay.
    ids = {i for idx, _ in loader for i in idx.tolist()}
    assert set(range(50, n)) <= ids and len(ids) == 50


def test_one_process_follows_the_original_sampler_order():
    def make(seed):
        g = torch.Generator().manual_seed(seed)
        return DataLoader(_Indexed(300), batch_size=32, shuffle=True, generator=g)

    plain = make(4)
    plain_epochs = [[i for idx, _ in plain for i in idx.tolist()] for _ in range(3)]
    loader = sifting.PruningDataloader(
        sifting.PruneConfig(rule="quota", keep_fraction=0.5, anneal_fraction=0.3),
        make(4),
        epochs=3,
        seed=0,
    )
    epochs = [ids for ids, _ in _epochs(loader, 3)]
    # Full epochs are exactly the plain ones; a pruned epoch is a subsequence of its plain
    # order (the same generator draws the same permutation).
    assert epochs[0] == plain_epochs[0] and epochs[2] == plain_epochs[2]
    kept = set(epochs[1])
    assert len(kept) == 150 and epochs[1] == [i for i in plain_epochs[1] if i in kept]
