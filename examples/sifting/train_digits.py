"""Train a small CNN on scikit-learn's bundled digits with and without sifting.

    python examples/sifting/train_digits.py                      # no sifting, then prune
    python examples/sifting/train_digits.py --rule quota --keep 0.6 --schedule onecycle
    python examples/sifting/train_digits.py --rule infobatch --schedule onecycle
    python examples/sifting/train_digits.py --mode relative --beta 1
    python examples/sifting/train_digits.py --device cuda          # the same on a GPU
    TRAINSPEC_SIFTING='{"mode": "SIFTING_MODE_PRUNE", "keep_fraction": 0.5}' \\
        python examples/sifting/train_digits.py --mode env       # as the local runner passes it

Nothing is downloaded. A progress bar uses tqdm when it is installed, else a text line.

`--schedule onecycle` steps a per-step learning-rate schedule after every optimizer step.
Pruned epochs have fewer steps, so the schedule is built for the real count: the quota
rule's (and random drop's) from `loader.planned_steps()`; the infobatch rule's count
adapts to the losses, so its schedule follows `loader.progress` (epochs done, fractional)
instead of a step count.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset
from trainspec.trainer import sifting

try:  # optional: a nicer progress bar, never a dependency
    from tqdm import tqdm
except ImportError:
    tqdm = None


class Progress:
    """tqdm when available, else one overwritten text line on stderr."""

    def __init__(self, iterable, total: int | None, desc: str) -> None:
        self.iterable, self.total, self.desc = iterable, total, desc

    def __iter__(self):
        if tqdm is not None:
            yield from tqdm(self.iterable, total=self.total, desc=self.desc, leave=False)
            return
        for i, item in enumerate(self.iterable, 1):
            of = f"/{self.total}" if self.total else ""
            sys.stderr.write(f"\r{self.desc}: batch {i}{of}")
            sys.stderr.flush()
            yield item
        sys.stderr.write("\r" + " " * 60 + "\r")


class CrossEntropy(sifting.Loss):
    """Per-sample loss for the relative-probabilistic (scoring) mode."""

    def loss(self, model, transformed_batch, original_batch=None):
        x, y = transformed_batch
        return F.cross_entropy(model(x), y, reduction="none")


def data(device: torch.device) -> tuple[TensorDataset, torch.Tensor, torch.Tensor]:
    """Digits split 70/30, on `device`: the relative mode scores batches with the model there."""
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    labels = torch.tensor(digits.target)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.3, random_state=0, stratify=labels
    )
    train_set = TensorDataset(x_train.to(device), y_train.to(device))
    return train_set, x_test.to(device), y_test.to(device)


def model() -> torch.nn.Module:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def check_device(name: str) -> None:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"--device {name!r} is not a torch device (cpu, cuda, cuda:1, ...)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: torch sees no CUDA device here; use --device cpu")


def config_for(args) -> sifting.SiftConfig | None:
    if args.schedule != "none" and args.mode == "relative":
        raise ValueError("--schedule: the relative mode's step count is not known ahead")
    if args.mode == "none":
        return None
    if args.mode == "env":
        return sifting.config_from_env()
    if args.mode == "relative":
        return sifting.RelativeProbabilisticSiftConfig(
            beta_value=args.beta,
            loss_history_length=500,
            loss_based_sift_config=sifting.LossConfig(
                sift_config=sifting.SiftingBaseConfig(sift_delay=args.sift_delay)
            ),
        )
    if args.mode == "prune":
        # A knob of the other rule raises, naming both (keep_fraction is the quota's).
        options = {"reweight": args.reweight}
        if args.rule is not None:
            options["rule"] = args.rule
        if args.keep is not None:
            options["keep_fraction"] = args.keep
        if args.prune_probability is not None:
            options["prune_probability"] = args.prune_probability
        return sifting.PruneConfig(**options)
    return sifting.RandomDropConfig(keep_fraction=0.7 if args.keep is None else args.keep)


def one_cycle(step_fraction: float) -> float:
    """OneCycle's shape as a multiplier: 30% warm-up from 1/25, then cosine to ~0."""
    if step_fraction < 0.3:
        return 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * step_fraction / 0.3))
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step_fraction - 0.3) / 0.7)))


def scheduler_for(opt, loader, args) -> tuple[object, int | None]:
    """The per-step schedule, built for the run's real number of steps (or None).

    Returns the scheduler and the steps it was built for (None when it follows progress).
    """
    if args.schedule == "none":
        return None, None
    if isinstance(loader, sifting.SiftingDataloader):
        raise ValueError("--schedule onecycle: the relative mode's step count is not known ahead")
    if getattr(getattr(loader, "config", None), "rule", None) == "infobatch":
        # The kept share adapts to the losses: follow the epochs done, not a step count.
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda _: one_cycle(loader.progress / args.epochs)
        ), None
    if isinstance(loader, sifting.PruningDataloader):
        total = sum(loader.planned_steps())  # pruned epochs have fewer steps
    else:
        total = len(loader) * args.epochs
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total), total


def train(config: sifting.SiftConfig | None, args) -> tuple[float, float]:
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    train_set, test_x, test_y = data(device)
    net = model().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    if config is not None:
        # epochs: the prune mode anneals its last epochs (and refuses to run without them).
        loader = sifting.from_config(config, loader, net, CrossEntropy(), epochs=args.epochs)
    scheduler, planned = scheduler_for(opt, loader, args)
    name = "no sifting" if config is None else type(config).__name__
    seconds, steps = 0.0, 0
    for epoch in range(1, args.epochs + 1):
        net.train()
        start = time.perf_counter()
        total = len(loader) if hasattr(loader, "__len__") else None
        for x, y in Progress(loader, total, f"{name} epoch {epoch}"):
            per_sample = F.cross_entropy(net(x), y, reduction="none")
            loss = per_sample.mean() if config is None else loader.report(per_sample)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if scheduler is not None:
                scheduler.step()
        seconds += time.perf_counter() - start
        net.eval()
        with torch.no_grad():
            accuracy = 100 * (net(test_x).argmax(1) == test_y).float().mean().item()
        kept = "" if config is None else f", kept {loader.stats.kept_fraction:.0%}"
        print(f"{name} epoch {epoch}: test accuracy {accuracy:.2f}%{kept}")
    if scheduler is not None:
        built = "by progress" if planned is None else f"for {planned} steps"
        lr = opt.param_groups[0]["lr"]
        print(f"{name} schedule: built {built}, {steps} steps taken, final lr {lr:.2e}")
    return accuracy, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode",
        choices=["none", "env", "relative", "prune", "random"],
        default="prune",
        help="the sifting run (always after a plain run)",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument(
        "--rule",
        choices=["quota", "infobatch"],
        default=None,
        help="prune mode: the pruning rule (default: PruneConfig's)",
    )
    parser.add_argument(
        "--keep", type=float, default=None, help="kept share (prune rule quota; random drop)"
    )
    parser.add_argument(
        "--prune-probability", type=float, default=None, help="prune rule infobatch: r"
    )
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's (peak) learning rate")
    parser.add_argument(
        "--schedule",
        choices=["none", "onecycle"],
        default="none",
        help="a per-step schedule, built for the real number of steps",
    )
    parser.add_argument(
        "--reweight",
        choices=["epoch", "step"],
        default="epoch",
        help="prune mode: InfoBatch's per-epoch rescaling or per-step normalisation",
    )
    parser.add_argument("--sift-delay", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="where data, model and sifting run (default: cuda when available)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log sifting counters")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        config = config_for(args)
        check_device(args.device)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    base_acc, base_s = train(None, args)
    if config is None:
        return 0
    acc, seconds = train(config, args)
    print(
        f"\nsifting ({type(config).__name__}) vs none: accuracy {acc - base_acc:+.2f} pt, "
        f"training time x{seconds / base_s:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
