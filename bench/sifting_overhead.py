"""Where a relative-probabilistic epoch's time goes, against the cost bound's two parts.

    python bench/sifting_overhead.py                  # MLP and CNN, beta 1 and 3, 3 seeds
    python bench/sifting_overhead.py --models mlp --betas 3 --seeds 5

bench/sifting.py checks that a sifted epoch costs at most 1.15x (one scoring pass over
the data + the kept share of a plain epoch). This splits the sifted epoch into what it
spends: fetching the original batches, the scoring forwards (the loss_impl's calls),
ranking them (the policy's keep_index), assembling batches of kept samples (the rest of
the loader's own time), and the training steps on those batches; each is printed as a
share of the bound, and so is the ratio with the ranking taken out. A plain run, a
scoring-only run and the sifted run train side by side, epochs interleaved in a rotating
order, with the data, models and learning rates of bench/sifting.py; epochs after the
first are used (the sift delay ends inside it).

The split shows what part of a miss is the method's own work: the scoring forwards and
the kept training steps are in the bound, the fetch is in its scoring pass, and ranking
and assembly are the overhead the 1.15x allows for.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from sifting import (  # bench/sifting.py, beside this file
    Arm,
    CrossEntropy,
    Trainer,
    autocast,
    cosine_lr,
    epoch_times,
    load_data,
    median,
    on_device,
    sync,
)
from trainspec.trainer import sifting

PARTS = ("fetch", "forward", "rank", "assemble", "train")


class TimedLoader:
    """The original DataLoader, its batch fetches timed into `clock["fetch"]`."""

    def __init__(self, loader: Any, clock: Counter) -> None:
        self.loader, self.clock, self.batch_size = loader, clock, loader.batch_size

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)
        while True:
            start = time.perf_counter()
            batch = next(batches, None)
            self.clock["fetch"] += time.perf_counter() - start
            if batch is None:
                return
            yield batch


class TimedLoss(sifting.Loss):
    """The scoring forward, timed into `clock["forward"]`."""

    def __init__(self, clock: Counter) -> None:
        self.clock, self.inner = clock, CrossEntropy()

    def loss(self, model, transformed_batch, original_batch=None):
        start = time.perf_counter()
        losses = self.inner.loss(model, transformed_batch, original_batch)
        self.clock["forward"] += time.perf_counter() - start
        return losses


def timed(call: Callable, clock: Counter, key: str) -> Callable:
    def wrapper(*args: Any) -> Any:
        start = time.perf_counter()
        result = call(*args)
        clock[key] += time.perf_counter() - start
        return result

    return wrapper


class SiftedRun:
    """bench/sifting.py's relative arm, its loader's parts timed, its epochs split into PARTS."""

    def __init__(self, kind: str, beta: float, seed: int, data, args) -> None:
        self.trainer = Trainer(Arm("relative", beta, label="relative"), kind, seed, data, args)
        self.clock: Counter = Counter()
        loader = self.trainer.loader
        loader.orig_dataloader = TimedLoader(loader.orig_dataloader, self.clock)
        loader.loss_impl = TimedLoss(self.clock)
        loader.policy.keep_index = timed(loader.policy.keep_index, self.clock, "rank")
        self.epochs: list[dict[str, float]] = []  # seconds per part, "total" and "kept"

    def step_epoch(self) -> None:
        trainer, clock = self.trainer, self.clock
        model, opt, loader, args = trainer.model, trainer.opt, trainer.loader, trainer.args
        clock.clear()
        for group in opt.param_groups:
            group["lr"] = cosine_lr(trainer.lr, len(self.epochs), args.epochs)
        model.train()
        sync(args)
        start = time.perf_counter()
        batches = iter(loader)
        while True:
            fetched = time.perf_counter()
            batch = next(batches, None)
            clock["loader"] += time.perf_counter() - fetched
            if batch is None:
                break
            stepped = time.perf_counter()
            bx, by = batch
            with autocast(args):
                per_sample = F.cross_entropy(model(bx), by, reduction="none")
            opt.zero_grad(set_to_none=True)
            loader.report(per_sample).backward()
            opt.step()
            sync(args)
            clock["train"] += time.perf_counter() - stepped
        total = time.perf_counter() - start
        parts = {key: clock[key] for key in ("fetch", "forward", "rank", "train")}
        parts["assemble"] = clock["loader"] - clock["fetch"] - clock["forward"] - clock["rank"]
        parts["total"] = total
        parts["kept"] = loader.epoch_stats[-1].kept_fraction
        self.epochs.append(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--betas", default="1,3")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    # The fields bench/sifting.py's Trainer reads, at that bench's defaults.
    run_args = SimpleNamespace(
        device=torch.device("cpu"),
        batch_size=64,
        epochs=args.epochs,
        history=500,
        sift_delay=50,
        amp=False,
        anneal=0.125,
        evals=1,
        lr=None,
    )
    data = on_device(load_data(), run_args.device)
    print(
        f"digits, batch 64, loss_history_length 500, {args.seeds} seeds x {args.epochs} "
        "epochs (the first left out), torch threads 1, CPU; each part of a sifted epoch as a "
        "share of its bound (scoring pass + kept share of a plain epoch), medians over epochs"
    )
    print(
        f"{'model':5} {'beta':>4} {'kept':>5}  "
        + " ".join(f"{part:>8}" for part in PARTS)
        + f" {'ratio':>6} {'no rank':>7} {'rank/batch':>10}"
    )
    for kind in args.models.split(","):
        for beta in (float(b) for b in args.betas.split(",")):
            print(_row(kind, beta, data, run_args, args.seeds))


def _row(kind: str, beta: float, data, run_args, seeds: int) -> str:
    shares: dict[str, list[float]] = {part: [] for part in (*PARTS, "ratio", "no rank")}
    kept, rank_per_batch = [], []
    batches = -(-len(data[0]) // run_args.batch_size)
    for seed in range(seeds):
        plain = Trainer(Arm("none", label="none"), kind, seed, data, run_args)
        scoring = Trainer(Arm("scoring", label="scoring"), kind, seed, data, run_args)
        sifted = SiftedRun(kind, beta, seed, data, run_args)
        runs = [plain.step_epoch, scoring.step_epoch, sifted.step_epoch]
        for epoch in range(run_args.epochs):
            shift = (epoch + seed) % len(runs)
            for step in runs[shift:] + runs[:shift]:
                step()
        plain_epoch = median(epoch_times(plain.run))
        scoring_pass = median(epoch_times(scoring.run))
        for parts in sifted.epochs[1:]:
            bound = scoring_pass + parts["kept"] * plain_epoch
            for part in PARTS:
                shares[part].append(parts[part] / bound)
            shares["ratio"].append(parts["total"] / bound)
            shares["no rank"].append((parts["total"] - parts["rank"]) / bound)
            kept.append(parts["kept"])
            rank_per_batch.append(parts["rank"] / batches)
    return (
        f"{kind:5} {beta:4g} {median(kept):5.3f}  "
        + " ".join(f"{median(shares[part]):8.1%}" for part in PARTS)
        + f" {median(shares['ratio']):6.2f} {median(shares['no rank']):7.2f}"
        + f" {median(rank_per_batch) * 1e6:8.0f}us"
    )


if __name__ == "__main__":
    main()
