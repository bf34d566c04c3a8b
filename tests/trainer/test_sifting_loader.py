"""SiftingDataloader (relative-probabilistic): keep rate, formats, delay, leftovers, hygiene."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset
from trainspec.trainer import sifting


def _config(beta=1.0, history=500, delay=0, repeat=False):
    return sifting.RelativeProbabilisticSiftConfig(
        beta_value=beta,
        loss_history_length=history,
        loss_based_sift_config=sifting.LossConfig(
            sift_config=sifting.SiftingBaseConfig(sift_delay=delay, repeat_delay_per_epoch=repeat)
        ),
    )


class _TupleLoss(sifting.Loss):
    def loss(self, model, transformed_batch, original_batch=None):
        x, y = transformed_batch
        return F.cross_entropy(model(x), y, reduction="none")


class _DictLoss(sifting.Loss):
    def loss(self, model, transformed_batch, original_batch=None):
        return F.cross_entropy(
            model(transformed_batch["x"]), transformed_batch["y"], reduction="none"
        )


class _TensorLoss(sifting.Loss):
    # The batch is features with the label in the last column.
    def loss(self, model, transformed_batch, original_batch=None):
        x, y = transformed_batch[:, :-1], transformed_batch[:, -1].long()
        return F.cross_entropy(model(x), y, reduction="none")


def _data(n=20_000, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_keep_fraction_matches_one_over_one_plus_beta(beta):
    x, y = _data()
    model = torch.nn.Linear(4, 3)
    loader = sifting.SiftingDataloader(
        _config(beta),
        DataLoader(TensorDataset(x, y), batch_size=100),
        model=model,
        loss_impl=_TupleLoss(),
        seed=1,
    )
    kept = sum(b[0].shape[0] for b in loader)
    assert loader.stats.samples_seen == loader.stats.samples_scored == 20_000
    assert loader.stats.samples_kept == kept
    assert abs(kept / 20_000 - 1 / (1 + beta)) <= 0.02


class _Records(Dataset):
    """Samples as dicts, with a per-sample string id and a shared constant."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i], "id": f"s{i}"}


def _ids_of(batch):
    return [int(i[1:]) for i in batch["id"]]


def test_batch_formats_tuple_list_dict_tensor():
    x, y = _data(n=1000)
    model = torch.nn.Linear(4, 3)
    tuple_loader = sifting.SiftingDataloader(
        _config(),
        DataLoader(TensorDataset(x, y), batch_size=50),
        model=model,
        loss_impl=_TupleLoss(),
        seed=3,
    )
    batches = list(tuple_loader)
    assert all(isinstance(b, list) and len(b) == 2 for b in batches)  # default_collate: list
    assert [b[0].shape[0] for b in batches[:-1]] == [50] * (len(batches) - 1)

    dict_loader = sifting.SiftingDataloader(
        _config(),
        DataLoader(_Records(x, y), batch_size=50),
        model=model,
        loss_impl=_DictLoss(),
        seed=3,
    )
    batches = list(dict_loader)
    assert all(set(b) == {"x", "y", "id"} for b in batches)
    for b in batches:
        ids = _ids_of(b)
        # Features, labels and ids stay aligned after selection and re-batching.
        assert torch.equal(b["x"], x[ids]) and torch.equal(b["y"], y[ids])

    table = torch.cat([x, y[:, None].float()], dim=1)
    tensor_loader = sifting.SiftingDataloader(
        _config(), DataLoader(table, batch_size=50), model=model, loss_impl=_TensorLoss(), seed=3
    )
    batches = list(tensor_loader)
    assert all(isinstance(b, torch.Tensor) and b.shape[1] == 5 for b in batches)


def test_batch_dimension_detected_from_batch_size_and_ambiguity_is_an_error():
    seq_first = {"tokens": torch.zeros(7, 4), "label": torch.arange(4)}  # [T, B] and [B]
    layout = sifting._batch.detect_layout(seq_first, batch_size_hint=4)
    assert layout == {"tokens": 1, "label": 0}
    picked = sifting._batch.select(seq_first, layout, torch.tensor([1, 3]))
    assert picked["tokens"].shape == (7, 2) and picked["label"].tolist() == [1, 3]
    with pytest.raises(sifting.BatchFormatError, match="ambiguous batch dimension"):
        sifting._batch.detect_layout(seq_first)
    square = {"pair": torch.zeros(3, 4, 4), "label": torch.arange(4)}
    with pytest.raises(sifting.BatchFormatError, match=r"batch\['pair'\].*several"):
        sifting._batch.detect_layout(square, batch_size_hint=4)
    with pytest.raises(sifting.BatchFormatError, match="no tensor"):
        sifting._batch.detect_layout(object())


def test_tuple_and_namedtuple_batches_keep_their_type():
    from collections import namedtuple

    Pair = namedtuple("Pair", "x y")
    batch = Pair(torch.arange(6.0)[:, None], torch.arange(6))
    layout = sifting._batch.detect_layout(batch)
    out = sifting._batch.select(batch, layout, torch.tensor([0, 5]))
    assert isinstance(out, Pair) and out.y.tolist() == [0, 5]
    joined = sifting._batch.concat([out, out], layout)
    assert isinstance(joined, Pair) and joined.y.tolist() == [0, 5, 0, 5]
    as_tuple = (torch.arange(4), torch.ones(4, 2))
    out = sifting._batch.select(as_tuple, sifting._batch.detect_layout(as_tuple), torch.tensor([2]))
    assert isinstance(out, tuple) and out[0].tolist() == [2]


def test_no_sample_lost_or_duplicated_at_epoch_end():
    x, y = _data(n=997)
    loader = sifting.SiftingDataloader(
        _config(beta=1.0, history=64),
        DataLoader(
            _Records(x, y),
            batch_size=32,
            shuffle=True,
            generator=torch.Generator().manual_seed(0),
        ),
        model=torch.nn.Linear(4, 3),
        loss_impl=_DictLoss(),
        seed=5,
    )
    for epoch in range(3):
        batches = list(loader)
        ids = [i for b in batches for i in _ids_of(b)]
        sizes = [len(b["id"]) for b in batches]
        kept = loader.epoch_stats[epoch].samples_kept
        assert len(ids) == len(set(ids)) == kept
        assert all(s == 32 for s in sizes[:-1])
        # The leftover is yielded rather than dropped.
        assert sizes[-1] == (kept % 32 or 32)


def test_delay_passes_batches_through_then_sifts():
    x, y = _data(n=640)
    model = torch.nn.Linear(4, 3)
    orig = DataLoader(TensorDataset(x, y), batch_size=64)
    loader = sifting.SiftingDataloader(
        _config(beta=3.0, delay=4), orig, model=model, loss_impl=_TupleLoss(), seed=0
    )
    first = list(loader)
    for got, want in zip(first[:4], orig, strict=False):
        assert torch.equal(got[0], want[0])  # untouched during the delay
    assert loader.stats.samples_scored == 640 - 4 * 64
    second = list(loader)  # the delay is not repeated ...
    assert loader.stats.samples_scored == 640 and len(second) < len(first)
    repeating = sifting.SiftingDataloader(
        _config(beta=3.0, delay=4, repeat=True), orig, model=model, loss_impl=_TupleLoss()
    )
    for _ in range(2):  # ... unless asked
        list(repeating)
        assert repeating.stats.samples_scored == 640 - 4 * 64


class _Noisy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(8)
        )
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


class _RandomLoss(_TupleLoss):
    def loss(self, model, transformed_batch, original_batch=None):
        assert not model.training and not torch.is_grad_enabled()
        torch.rand(3)  # a loss that draws from the global RNG must not shift the user's
        return super().loss(model, transformed_batch, original_batch)


def test_scoring_restores_modes_and_rng_and_leaves_bn_stats_alone():
    x, y = _data(n=256)
    model = _Noisy()
    model.train()
    model.head.eval()  # a mixed state must come back exactly
    running = model.body[2].running_mean.clone()
    loader = sifting.SiftingDataloader(
        _config(),
        DataLoader(TensorDataset(x, y), batch_size=64),
        model=model,
        loss_impl=_RandomLoss(),
        seed=0,
    )
    # The reference is a pass over the plain DataLoader, which itself draws a base seed.
    torch.manual_seed(123)
    for _ in loader.orig_dataloader:
        pass
    expected = torch.rand(5)
    torch.manual_seed(123)
    for _ in loader:
        assert model.training and model.body.training and not model.head.training
    assert torch.equal(torch.rand(5), expected)
    assert torch.equal(model.body[2].running_mean, running)


def test_bad_loss_shape_is_a_clear_error():
    class Mean(sifting.Loss):
        def loss(self, model, transformed_batch, original_batch=None):
            return _TupleLoss().loss(model, transformed_batch).mean()

    loader = sifting.SiftingDataloader(
        _config(),
        DataLoader(TensorDataset(*_data(n=64)), batch_size=32),
        model=torch.nn.Linear(4, 3),
        loss_impl=Mean(),
    )
    with pytest.raises(ValueError, match="one loss per sample: expected 32"):
        list(loader)


def test_batch_transforms_feed_scoring_and_originals_are_yielded():
    x, y = _data(n=300)

    class Transform:
        calls = 0

        def transform(self, batch):
            Transform.calls += 1
            return batch[0] * 2, batch[1]

    loader = sifting.SiftingDataloader(
        _config(),
        DataLoader(TensorDataset(x, y), batch_size=30),
        Transform(),
        torch.nn.Linear(4, 3),
        _TupleLoss(),
        seed=0,
    )
    rows = torch.cat([b[0] for b in loader])
    assert Transform.calls == 10
    assert all(any(torch.equal(r, row) for row in x) for r in rows[:5])


def _run(seed):
    torch.manual_seed(seed)
    x, y = _data(n=2000, seed=seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = sifting.SiftingDataloader(
        _config(beta=1.0, history=100),
        DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True),
        model=model,
        loss_impl=_TupleLoss(),
    )
    seen = []
    for _ in range(2):
        for bx, by in loader:
            loss = loader.report(F.cross_entropy(model(bx), by, reduction="none"))
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen.append(bx.sum().item())
    return seen, [p.detach().clone() for p in model.parameters()]


def test_seeded_run_is_reproducible():
    a, params_a = _run(7)
    b, params_b = _run(7)
    c, _ = _run(8)
    assert a == b and all(torch.equal(p, q) for p, q in zip(params_a, params_b, strict=True))
    assert a != c


def test_autocast_scoring_on_cpu():
    x, y = _data(n=256)
    loader = sifting.SiftingDataloader(
        _config(),
        DataLoader(TensorDataset(x, y), batch_size=64),
        model=torch.nn.Linear(4, 3),
        loss_impl=_TupleLoss(),
        autocast_dtype=torch.bfloat16,
        seed=0,
    )
    assert 0 < sum(b[0].shape[0] for b in loader) < 256


def test_percentiles_are_mid_ranks_in_the_history():
    history = torch.randn(300).round(decimals=1)  # ties included
    losses = torch.cat([history[:20], torch.tensor([-9.0, 9.0])])
    policy = sifting.RelativeProbabilisticPolicy(1.0, 300, torch.Generator())
    policy.keep_mask(history)
    expected = ((history < losses[:, None]).sum(1) + (history <= losses[:, None]).sum(1)) / 600
    assert torch.allclose(policy.percentiles(losses), expected.float())
    assert policy.percentiles(losses)[-2] == 0 and policy.percentiles(losses)[-1] == 1


@pytest.mark.parametrize(("score_batches", "calls"), [(1, 4), (2, 2)])
def test_modules_overriding_train_get_real_train_calls(score_batches, calls):
    class Frozen(torch.nn.Linear):
        calls = 0

        def train(self, mode=True):
            Frozen.calls += 1
            return super().train(mode)

    model = torch.nn.Sequential(Frozen(4, 3))
    loader = sifting.SiftingDataloader(
        _config(),
        DataLoader(TensorDataset(*_data(n=128)), batch_size=64),
        model=model,
        loss_impl=_TupleLoss(),
        seed=0,
        score_batches=score_batches,
    )
    list(loader)
    # One eval() and one train() per scored group: 2 batches in 1 or 2 groups.
    assert model.training and model[0].training and Frozen.calls == calls


def test_group_size_changes_no_choice():
    x, y = _data(n=1500)

    model = torch.nn.Linear(4, 3)

    def batches(score_batches):
        loader = sifting.SiftingDataloader(
            _config(beta=2.0, history=100, delay=3),
            DataLoader(_Records(x, y), batch_size=40),
            model=model,
            loss_impl=_DictLoss(),
            seed=2,
            score_batches=score_batches,
        )
        return [_ids_of(b) for _ in range(2) for b in loader]

    one = batches(1)
    assert batches(5) == one and batches(None) == one
    assert 0 < sum(map(len, one)) < 2 * 1500


class _Augmented(Dataset):
    """Each fetch draws from the global RNG, like a random augmentation."""

    def __len__(self):
        return 600

    def __getitem__(self, i):
        return torch.rand(4), torch.tensor(i % 3)


def test_dataset_randomness_is_not_replayed_by_scoring():
    loader = sifting.SiftingDataloader(
        _config(beta=1.0, history=100),
        DataLoader(_Augmented(), batch_size=30),
        model=torch.nn.Linear(4, 3),
        loss_impl=_RandomLoss(),  # draws from the RNG too, restored after
        seed=0,
        score_batches=4,
    )
    torch.manual_seed(0)
    plain = torch.cat([b[0] for b in loader.orig_dataloader])
    torch.manual_seed(0)
    rows = torch.cat([b[0] for b in loader])
    # Every yielded sample is one the plain loader drew, none twice: fetching ran on the
    # live RNG, not on a state restored after scoring.
    assert 0 < len(rows) < len(plain)
    assert len(torch.unique(rows, dim=0)) == len(rows)
    assert all(bool((plain == r).all(1).any()) for r in rows)
