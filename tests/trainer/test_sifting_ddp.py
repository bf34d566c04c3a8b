"""Sifting under DistributedDataParallel: 2 gloo processes on CPU, 3 epochs, no hang, one table."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.torch  # the workers train with torch.distributed

_WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
    from trainspec.trainer import sifting

    rank, out = int(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + sys.argv[3], rank=rank, world_size=2)
    torch.manual_seed(100 + rank)  # ranks seeded differently on purpose
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 6, generator=g)
    y = (x[:, 0] + 0.5 * torch.randn(1000, generator=g) > 0).long()
    ds = TensorDataset(x, y)
    model = DistributedDataParallel(torch.nn.Linear(6, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    class Loss(sifting.Loss):
        def loss(self, model, batch, original=None):
            return F.cross_entropy(model(batch[0]), batch[1], reduction="none")

    def train(loader, sampler, net=model, leave_at=None):
        for epoch in range(3):
            sampler.set_epoch(epoch)
            for b, (bx, by) in enumerate(loader):
                if b == 0 and hasattr(loader, "_losses"):  # the table this epoch chose from
                    report.setdefault(name + "_tables", []).append(loader._losses.tolist())
                if (epoch, b) == leave_at:
                    break  # this rank leaves the epoch early
                loss = loader.report(F.cross_entropy(net(bx), by, reduction="none"))
                opt.zero_grad()
                loss.backward()  # DDP all-reduce: a missing batch on one rank would hang
                opt.step()
        return [[s.batches, s.samples_kept, s.samples_repeated] for s in loader.epoch_stats]

    report = {}
    name = "relative"
    sampler = DistributedSampler(ds, shuffle=True, seed=0)
    config = sifting.RelativeProbabilisticSiftConfig(
        beta_value=1.0, loss_history_length=64,
        loss_based_sift_config={"sift_config": {"sift_delay": 3}})
    loader = sifting.SiftingDataloader(
        config, DataLoader(ds, batch_size=32, sampler=sampler), model=model, loss_impl=Loss())
    report["relative"] = train(loader, sampler)
    report["history"] = loader.policy._history.tolist()

    for name, config in [
        ("prune", sifting.PruneConfig(rule="quota", keep_fraction=0.5)),
        ("infobatch", sifting.PruneConfig(rule="infobatch", prune_probability=0.5)),
    ]:
        prune = sifting.from_config(
            config, DataLoader(ds, batch_size=32, shuffle=True), model, epochs=3)
        report[name] = train(prune, sampler)

    # Rank 1 leaves epoch 2 after 2 batches (a plain model: DDP itself needs equal steps).
    name = "early"
    plain = torch.nn.Linear(6, 2)
    early = sifting.PruningDataloader(
        sifting.PruneConfig(rule="infobatch"), DataLoader(ds, batch_size=32, shuffle=True),
        plain, epochs=4)
    report["early"] = train(early, sampler, plain, leave_at=(1, 2) if rank == 1 else None)
    dist.destroy_process_group()
    with open(out, "w") as f:
        json.dump(report, f)
    """
)


def test_two_gloo_ranks_yield_equal_batches_for_three_epochs(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(r),
                str(tmp_path / f"r{r}.json"),
                str(tmp_path / "rendezvous"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=60)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise AssertionError("DDP sifting hung") from None
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    r0, r1 = (json.loads((tmp_path / f"r{r}.json").read_text()) for r in range(2))

    for mode in ("relative", "prune", "infobatch", "early"):
        assert len(r0[mode]) == len(r1[mode]) == 3
        # Same number of batches on both ranks in every epoch (but the one rank 1 left).
        skip = 1 if mode == "early" else None
        assert [e[0] for i, e in enumerate(r0[mode]) if i != skip] == [
            e[0] for i, e in enumerate(r1[mode]) if i != skip
        ]
    # Sifting was uneven between the ranks yet nothing hung, and the
    # percentiles were taken over both ranks' losses (identical histories).
    assert any(a[1] != b[1] for a, b in zip(r0["relative"], r1["relative"], strict=True))
    assert all(0 < e[1] < 500 for e in r0["relative"] + r1["relative"])
    assert r0["history"] == r1["history"]
    # Both rules chose from one table: every rank's reported losses, merged.
    for mode in ("prune", "infobatch", "early"):
        assert r0[mode + "_tables"] == r1[mode + "_tables"]
        assert len(r0[mode + "_tables"]) == 3
    assert [e[1] + e[2] for e in r0["prune"]] == [500, 250, 500]  # warm-up, pruned, annealed
    # InfoBatch prunes about half of the below-mean samples: between the extremes.
    pruned = r0["infobatch"][1][1] + r0["infobatch"][1][2]
    assert 250 < pruned < 500 and r0["infobatch"][2][1] + r0["infobatch"][2][2] == 500
    # Rank 1 left epoch 2 early: the merge still happened, at epoch 3's start, and the
    # losses rank 1 reported before leaving are in both ranks' tables.
    assert r1["early"][1][0] == 3 and r0["early"][1][0] > 3
    assert r0["early_tables"][2] != r0["early_tables"][1]
