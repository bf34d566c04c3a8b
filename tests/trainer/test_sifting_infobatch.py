"""The prune rules: InfoBatch's and the quota, unbiasedness, adaptive share, misconfiguration."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset
from trainspec.trainer import sifting


class _Fixed(Dataset):
    """Sample i is (i, its fixed loss), so the test controls every loss."""

    def __init__(self, losses):
        self.loss = torch.as_tensor(losses, dtype=torch.float32)

    def __len__(self):
        return len(self.loss)

    def __getitem__(self, i):
        return i, self.loss[i]


def _pruned_epochs(loader, n_epochs):
    """Run epochs reporting the fixed losses; each epoch's {index: weight} (the full first
    epoch included). A weight is d(reported)/d(loss) x the batch's length."""
    out = []
    for _ in range(n_epochs):
        weights = {}
        for idx, loss in loader:
            per_sample = loss.clone().requires_grad_()
            loader.report(per_sample).backward()
            weights.update(zip(idx.tolist(), (per_sample.grad * len(idx)).tolist(), strict=True))
        out.append(weights)
    return out


def test_infobatch_prunes_only_below_mean_samples_with_probability_r():
    n = 1000
    losses = torch.linspace(0.0, 1.0, n)  # the lower 500 are below the mean
    loader = sifting.PruningDataloader(
        sifting.PruneConfig(rule="infobatch", prune_probability=0.3, anneal_fraction=0),
        DataLoader(_Fixed(losses), batch_size=64, shuffle=True),
        seed=0,
    )
    epochs = _pruned_epochs(loader, 4)
    assert set(epochs[0]) == set(range(n)) and set(epochs[0].values()) == {1.0}
    for weights in epochs[1:]:
        assert set(range(500, n)) <= set(weights)  # nothing above the mean is dropped
        dropped = set(range(n)) - set(weights)
        # Binomial(500, 0.3): 150 expected, sd 10.
        assert 110 < len(dropped) < 190
        assert all(math.isclose(w, 1 / 0.7, rel_tol=1e-5) for i, w in weights.items() if i < 500)
        assert all(math.isclose(w, 1.0, rel_tol=1e-6) for i, w in weights.items() if i >= 500)
    assert epochs[1].keys() != epochs[2].keys()  # a fresh draw each epoch


@pytest.mark.parametrize(
    ("rule", "options"),
    [("infobatch", {"prune_probability": 0.5}), ("quota", {"keep_fraction": 0.6})],
)
def test_both_rules_are_unbiased_for_the_full_data_loss(rule, options):
    # Fixed, skewed losses: 70% of them below the mean, so the quota rule's pool is the
    # below-mean samples and InfoBatch's share adapts.
    g = torch.Generator().manual_seed(0)
    losses = torch.rand(200, generator=g) ** 3
    loader = sifting.PruningDataloader(
        sifting.PruneConfig(rule=rule, anneal_fraction=0, **options),
        DataLoader(_Fixed(losses), batch_size=200),
        seed=1,
    )
    epochs = _pruned_epochs(loader, 401)[1:]
    sums = torch.tensor(
        [sum(w * losses[i].item() for i, w in e.items()) for e in epochs], dtype=torch.float64
    )
    full = losses.double().sum().item()
    se = sums.std().item() / math.sqrt(len(sums))
    # Expected weighted sum over a pruned epoch = the full data's sum; dropping without the
    # weights would miss it by ~8% (the pruned samples' share of the sum), over 20 SEs.
    assert abs(sums.mean().item() - full) < max(4 * se, 1e-3 * full), (sums.mean(), full, se)
    assert abs(sums.mean().item() - full) < 0.01 * full
    # And per sample: P(kept) x weight = 1, every sample counted once in expectation.
    counted = torch.zeros(200, dtype=torch.float64)
    for e in epochs:
        for i, w in e.items():
            counted[i] += w
    counted /= len(epochs)
    assert (counted - 1).abs().max() < 0.25 and abs(counted.mean() - 1) < 0.02


@pytest.mark.parametrize(("share_below", "r"), [(0.9, 0.5), (0.5, 0.5), (0.1, 0.5), (0.9, 0.8)])
def test_infobatch_kept_share_adapts_to_the_losses_where_the_quota_does_not(share_below, r):
    n = 2000
    below = int(share_below * n)
    losses = torch.cat([torch.full((below,), 0.1), torch.full((n - below,), 1.0)])
    data = DataLoader(_Fixed(losses), batch_size=100, shuffle=True)
    info = sifting.PruningDataloader(
        sifting.PruneConfig(rule="infobatch", prune_probability=r, anneal_fraction=0),
        data,
        seed=2,
    )
    quota = sifting.PruningDataloader(
        sifting.PruneConfig(rule="quota", keep_fraction=0.6, anneal_fraction=0), data, seed=2
    )
    for loader in (info, quota):
        _pruned_epochs(loader, 3)
    expected = 1 - r * share_below  # pruned: r of the below-mean share
    for stats in info.epoch_stats[1:]:
        assert abs(stats.kept_fraction - expected) < 4 * math.sqrt(r * (1 - r) * below) / n
    assert [s.kept_fraction for s in quota.epoch_stats[1:]] == [0.6, 0.6]
    # len() before an infobatch epoch is that epoch's real batch count.
    planned = len(info)
    assert planned == sum(1 for _ in info)


def test_quota_drops_above_mean_samples_when_few_are_below_infobatch_never():
    n = 1000
    losses = torch.cat([torch.full((100,), 0.1), torch.linspace(1.0, 2.0, 900)])
    data = DataLoader(_Fixed(losses), batch_size=100)
    mean = losses.mean().item()
    above = {i for i in range(n) if losses[i] >= mean}
    for rule, options in (("quota", {"keep_fraction": 0.6}), ("infobatch", {})):
        loader = sifting.PruningDataloader(
            sifting.PruneConfig(rule=rule, anneal_fraction=0, **options), data, seed=0
        )
        weights = _pruned_epochs(loader, 2)[1]
        dropped_above = above - set(weights)
        weighted_above = [i for i in above & set(weights) if weights[i] > 1.0 + 1e-6]
        if rule == "quota":  # the pool widened past the mean: dropped and double-weighted
            assert dropped_above and weighted_above
        else:
            assert not dropped_above and not weighted_above


def test_step_reweighting_scales_by_the_realised_kept_share():
    losses = torch.linspace(0.0, 1.0, 400)
    loader = sifting.PruningDataloader(
        sifting.PruneConfig(rule="infobatch", reweight="step", anneal_fraction=0),
        DataLoader(_Fixed(losses), batch_size=400),
        seed=3,
    )
    weights = _pruned_epochs(loader, 2)[1]
    # InfoBatch's weights (2 below the mean, 1 above) times the kept share: each step's
    # weighted mean estimates the full data's mean.
    share = len(weights) / 400
    assert 200 < len(weights) < 400
    for i, w in weights.items():
        assert math.isclose(w, share * (2.0 if i < 200 else 1.0), rel_tol=1e-5)


@pytest.mark.parametrize(
    ("options", "fields"),
    [
        ({"rule": "infobatch", "keep_fraction": 0.6}, ("keep_fraction", "rule='infobatch'")),
        ({"rule": "quota", "prune_probability": 0.5}, ("prune_probability", "rule='quota'")),
        ({"rule": "fixed"}, ("rule",)),
        ({"rule": "infobatch", "prune_probability": 1.0}, ("prune_probability",)),
        ({"rule": "infobatch", "prune_probability": 0}, ("prune_probability",)),
    ],
)
def test_invalid_rule_combinations_name_the_fields(options, fields):
    with pytest.raises(ValueError) as err:
        sifting.PruneConfig(**options)
    for field in fields:
        assert field in str(err.value)


def test_annealing_without_epochs_is_refused_and_overrunning_them_warns():
    data = DataLoader(_Fixed(torch.rand(40)), batch_size=10)
    for build in (
        lambda: sifting.PruningDataloader(sifting.PruneConfig(), data),
        lambda: sifting.from_config(sifting.PruneConfig(anneal_fraction=0.25), data),
    ):
        with pytest.raises(ValueError, match=r"epochs is required with anneal_fraction=0\.\d+"):
            build()
    # No annealing: no epoch count needed, pruning runs to the end.
    loader = sifting.PruningDataloader(sifting.PruneConfig(anneal_fraction=0), data, seed=0)
    assert loader.anneal_epochs == 0
    loader = sifting.PruningDataloader(sifting.PruneConfig(), data, epochs=2, seed=0)
    _pruned_epochs(loader, 2)
    with pytest.warns(UserWarning, match="epoch 3 started but epochs=2"):
        _pruned_epochs(loader, 1)


def test_a_distributed_sampler_underneath_is_refused_loudly():
    ds = _Fixed(torch.rand(40))
    sampler = DistributedSampler(ds, num_replicas=2, rank=0)
    with pytest.raises(
        ValueError, match=r"DistributedSampler \(num_replicas=2\).*no DistributedSampler"
    ):
        sifting.PruningDataloader(
            sifting.PruneConfig(), DataLoader(ds, batch_size=10, sampler=sampler), epochs=3
        )


def _train(loader, model, opt, scheduler, epochs):
    steps, lrs = [], []
    for _ in range(epochs):
        n = 0
        for x, y in loader:
            loss = loader.report(F.cross_entropy(model(x), y, reduction="none"))
            opt.zero_grad()
            loss.backward()
            opt.step()
            lrs.append(opt.param_groups[0]["lr"])
            scheduler.step()
            n += 1
        steps.append(n)
    return steps, lrs


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(700, 5, generator=g)
    return TensorDataset(x, (x[:, 0] + x[:, 1] > 0).long())


@pytest.mark.parametrize("drop_last", [False, True])
def test_planned_steps_build_a_one_cycle_schedule_for_the_real_step_count(drop_last):
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = sifting.PruningDataloader(
        sifting.PruneConfig(rule="quota", keep_fraction=0.5),
        DataLoader(_problem(), batch_size=64, shuffle=True, drop_last=drop_last),
        model,
        epochs=5,
    )
    planned = loader.planned_steps()
    assert planned[0] > planned[1] == planned[2] == planned[3] < planned[4]
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=sum(planned))
    # OneCycleLR raises when stepped past total_steps; the run ends exactly on its last step.
    steps, lrs = _train(loader, model, opt, schedule, 5)
    assert tuple(steps) == planned
    assert lrs[-1] < 1e-3 * 0.5 and max(lrs) == pytest.approx(0.5, rel=0.01)


def test_infobatch_has_no_step_plan_and_progress_drives_its_schedule():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loader = sifting.PruningDataloader(
        sifting.PruneConfig(rule="infobatch"),
        DataLoader(_problem(), batch_size=64, shuffle=True),
        model,
        epochs=4,
    )
    with pytest.raises(ValueError, match=r"rule='infobatch'.*loader\.progress"):
        loader.planned_steps()
    seen = []

    def cosine(_step):
        seen.append(loader.progress)
        return 0.5 * (1 + math.cos(math.pi * loader.progress / 4))

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    steps, lrs = _train(loader, model, opt, schedule, 4)
    assert steps[1] < steps[0] == steps[3]  # the middle epochs are pruned
    assert seen == sorted(seen) and seen[-1] == pytest.approx(4.0)
    assert lrs[0] == pytest.approx(0.5) and lrs[-1] < 0.01
    # Each epoch ends at a whole number of epochs done.
    ends = [sum(steps[: e + 1]) for e in range(4)]
    assert [seen[i] for i in ends] == pytest.approx([1.0, 2.0, 3.0, 4.0])
