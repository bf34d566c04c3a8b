"""Sifting time-to-accuracy benchmark on scikit-learn's bundled digits, printed as ratios.

Every mode trains the same model from the same initialisation with the same data order
seed, side by side in one run (modes interleaved per seed, so machine noise hits all of
them alike). Times are training wall time only; evaluation after each epoch is excluded.

    python bench/sifting.py                 # 5 seeds, 8 epochs, CNN and MLP (a few minutes)
    python bench/sifting.py --quick         # smoke run: 2 seeds, 3 epochs, MLP only
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset
from trainspec.trainer import sifting

# The original plus one-pixel shifts up, down, left and right.
SHIFTS = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]


def load_data() -> tuple[TensorDataset, torch.Tensor, torch.Tensor]:
    """Digits (no download), split 70/30 once; the training part grown 5x by 1-pixel shifts."""
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.3, random_state=0, stratify=digits.target
    )
    shifted = []
    for dy, dx in SHIFTS:
        # Shift with zero fill (not wrap-around): the digit moves, the border stays blank.
        out = np.zeros_like(x_train)
        src = x_train[:, max(0, -dy) : 8 - max(0, dy), max(0, -dx) : 8 - max(0, dx)]
        out[:, max(0, dy) : 8 - max(0, -dy), max(0, dx) : 8 - max(0, -dx)] = src
        shifted.append(out)
    x_big = torch.from_numpy(np.concatenate(shifted))[:, None]
    y_big = torch.from_numpy(np.tile(y_train, len(SHIFTS))).long()
    test_x = torch.from_numpy(x_test)[:, None]
    return TensorDataset(x_big, y_big), test_x, torch.from_numpy(y_test).long()


def make_model(kind: str) -> torch.nn.Module:
    nn = torch.nn
    if kind == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 16, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


class CrossEntropy(sifting.Loss):
    def loss(self, model, transformed_batch, original_batch=None):
        x, y = transformed_batch
        return F.cross_entropy(model(x), y, reduction="none")


@dataclass
class Run:
    name: str
    accuracies: list[float] = field(default_factory=list)  # after each epoch
    times: list[float] = field(default_factory=list)  # cumulative training wall seconds
    cpu_times: list[float] = field(default_factory=list)  # cumulative process CPU seconds
    epoch_seconds: list[float] = field(default_factory=list)
    kept: float = 1.0


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was = model.training
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    model.train(was)
    return 100 * accuracy


class Trainer:
    """One mode's training run, advanced one epoch at a time so modes can interleave."""

    def __init__(self, mode: str, param: float, label: str, kind: str, seed: int, data, args):
        self.mode, self.data, self.args = mode, data, args
        train_set = data[0]
        torch.manual_seed(seed)
        self.model = make_model(kind)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=args.lr, momentum=0.9, nesterov=True)
        gen = torch.Generator().manual_seed(seed)
        base = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=gen)
        if mode in ("none", "scoring"):
            self.loader = base
        elif mode == "relative":
            config = sifting.RelativeProbabilisticSiftConfig(
                beta_value=param,
                loss_history_length=args.history,
                loss_based_sift_config={"sift_config": {"sift_delay": args.sift_delay}},
            )
            self.loader = sifting.SiftingDataloader(
                config, base, model=self.model, loss_impl=CrossEntropy(), seed=seed
            )
        elif mode == "prune":
            config = sifting.PruneConfig(keep_fraction=param, anneal_fraction=args.anneal)
            self.loader = sifting.PruningDataloader(
                config, base, self.model, epochs=args.epochs, seed=seed
            )
        else:
            self.loader = sifting.PruningDataloader(
                sifting.RandomDropConfig(param), base, self.model, seed=seed
            )
        self.run = Run(label)
        self.epoch = 0

    def step_epoch(self) -> None:
        args, model, opt, loader = self.args, self.model, self.opt, self.loader
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * self.epoch / args.epochs))
        for group in opt.param_groups:
            group["lr"] = lr
        self.epoch += 1
        start, cpu = time.perf_counter(), time.process_time()
        if self.mode == "scoring":
            # The bound's "one scoring forward over the data": no-grad, eval mode.
            model.eval()
            with torch.no_grad():
                for bx, by in loader:
                    F.cross_entropy(model(bx), by, reduction="none")
        else:
            model.train()
            for bx, by in loader:
                per_sample = F.cross_entropy(model(bx), by, reduction="none")
                loss = per_sample.mean() if self.mode == "none" else loader.report(per_sample)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        spent, spent_cpu = time.perf_counter() - start, time.process_time() - cpu
        run = self.run
        run.epoch_seconds.append(spent)
        run.times.append((run.times[-1] if run.times else 0.0) + spent)
        run.cpu_times.append((run.cpu_times[-1] if run.cpu_times else 0.0) + spent_cpu)
        if self.mode != "scoring":
            run.accuracies.append(evaluate(model, self.data[1], self.data[2]))
        if self.mode not in ("none", "scoring"):
            stats = loader.epoch_stats
            run.kept = sum(s.samples_kept for s in stats) / sum(s.samples_seen for s in stats)


def time_to(run: Run, target: float, cpu: bool = False) -> float:
    for acc, t in zip(run.accuracies, run.cpu_times if cpu else run.times, strict=True):
        if acc >= target:
            return t
    return math.inf


def backward_forward(kind: str, data, args, reps: int = 200) -> tuple[float, float]:
    """(backward / training forward, no-grad eval forward / training forward), medians of
    per-batch timings over `reps` batches after a warm-up."""
    x, y = data[0].tensors[0][: args.batch_size], data[0].tensors[1][: args.batch_size]
    model = make_model(kind)
    fwd, bwd, score = [], [], []
    for i in range(reps + 20):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        model.eval()
        t2b = time.perf_counter()
        with torch.no_grad():
            F.cross_entropy(model(x), y, reduction="none")
        t3 = time.perf_counter()
        model.train()
        model.zero_grad()
        if i >= 20:  # warm-up excluded
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            score.append(t3 - t2b)
    return median(bwd) / median(fwd), median(score) / median(fwd)


def median(values: list[float]) -> float:
    return statistics.median(values)


def fmt_ratio(values: list[float]) -> str:
    reached = [v for v in values if math.isfinite(v)]
    m = median(values)
    text = f"{m:6.2f}" if math.isfinite(m) else "   inf"
    if len(reached) < len(values):
        text += f" ({len(reached)}/{len(values)} reached)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--betas", default="0.5,1,2,3")
    parser.add_argument(
        "--keeps", default="0.5,0.7", help="prune mode keep_fraction values (comma-separated)"
    )
    parser.add_argument("--anneal", type=float, default=0.125, help="prune anneal_fraction")
    parser.add_argument("--history", type=int, default=500)
    parser.add_argument("--sift-delay", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 3 epochs, MLP only")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.models = 2, 3, "mlp"
    torch.set_num_threads(args.threads)
    data = load_data()
    betas = [float(b) for b in args.betas.split(",")]
    keeps = [float(k) for k in args.keeps.split(",")]
    anneal_epochs = math.ceil(args.anneal * args.epochs - 1e-9) if args.anneal else 0
    pruned_epochs = max(0, args.epochs - 1 - anneal_epochs)

    def overall(keep: float) -> float:
        return (args.epochs - pruned_epochs + pruned_epochs * keep) / args.epochs

    modes = [("none", 0.0, "no sifting")]
    modes += [("relative", b, f"relative beta={b:g}") for b in betas]
    modes += [("prune", k, f"prune keep={k:g}") for k in keeps]
    modes += [("random", 1 / (1 + b), f"random keep={1 / (1 + b):.3f}") for b in betas]
    modes += [("random", overall(k), f"random keep={overall(k):.3f}") for k in keeps]
    print(
        f"digits: {len(data[0])} training samples (1257 originals x {len(SHIFTS)} one-pixel "
        f"shifts, deterministic), {len(data[2])} test samples; batch {args.batch_size}, "
        f"{args.epochs} epochs, SGD lr {args.lr} cosine, {args.seeds} seeds, "
        f"torch threads {args.threads}, device cpu"
    )
    print(
        f"relative: loss_history_length {args.history}, sift_delay {args.sift_delay}; prune: "
        f"keep {args.keeps} in pruned epochs, anneal {args.anneal} ({anneal_epochs} full "
        f"epoch(s) at the end, first epoch full); random drop keeps 1/(1+beta) and prune's "
        f"overall fractions ({', '.join(f'{overall(k):.3f}' for k in keeps)}) in every epoch"
    )
    print(
        "time-to-accuracy: training seconds until test accuracy >= (no-sifting final - 0.5 pt)"
        ", divided by the no-sifting run's own time to that target; evaluation excluded"
    )
    print(
        "all modes of a seed train side by side, interleaved epoch by epoch in a rotating "
        "order; 'cpu' columns use process CPU time, steadier than wall time on a busy machine"
    )
    for kind in args.models.split(","):
        bwd_fwd, score_fwd = backward_forward(kind, data, args)
        results: dict[str, list[Run]] = {label: [] for _, _, label in modes}
        scoring: list[Run] = []
        for seed in range(args.seeds):
            trainers = [Trainer(m, p, label, kind, seed, data, args) for m, p, label in modes]
            trainers.append(Trainer("scoring", 0.0, "scoring", kind, seed, data, args))
            for epoch in range(args.epochs):
                shift = (epoch + seed) % len(trainers)
                for trainer in trainers[shift:] + trainers[:shift]:
                    trainer.step_epoch()
            for trainer in trainers[:-1]:
                results[trainer.run.name].append(trainer.run)
            scoring.append(trainers[-1].run)
        report(kind, modes, results, scoring, bwd_fwd, score_fwd)


def report(kind, modes, results, scoring, bwd_fwd, score_fwd) -> None:
    base_runs = results["no sifting"]
    base_final = [r.accuracies[-1] for r in base_runs]
    base_ttt = [time_to(r, a - 0.5) for r, a in zip(base_runs, base_final, strict=True)]
    base_ttt_cpu = [
        time_to(r, a - 0.5, cpu=True) for r, a in zip(base_runs, base_final, strict=True)
    ]
    print()
    print(
        f"== {kind}: backward/forward cost {bwd_fwd:.2f}x, scoring forward (no-grad, eval) / "
        f"training forward {score_fwd:.2f}x; no-sifting final accuracy median "
        f"{median(base_final):.2f}% (seeds: {', '.join(f'{a:.1f}' for a in base_final)})"
    )
    print(
        f"{'mode':<20}{'time-to-acc':>19}{'(cpu)':>8}{'total':>7}{'(cpu)':>7}"
        f"{'acc diff pt':>12}{'kept':>7}{'epoch/bound':>12}{'(cpu)':>7}"
    )
    for _, _, label in modes:
        runs = results[label]
        ttt = [time_to(r, a - 0.5) / b for r, a, b in zip(runs, base_final, base_ttt, strict=True)]
        ttt_cpu = [
            time_to(r, a - 0.5, cpu=True) / b
            for r, a, b in zip(runs, base_final, base_ttt_cpu, strict=True)
        ]
        total = [r.times[-1] / b.times[-1] for r, b in zip(runs, base_runs, strict=True)]
        total_cpu = [
            r.cpu_times[-1] / b.cpu_times[-1] for r, b in zip(runs, base_runs, strict=True)
        ]
        diff = [r.accuracies[-1] - a for r, a in zip(runs, base_final, strict=True)]
        bound = bound_cpu = ""
        if label.startswith("relative"):
            bound = f"{median(bound_ratios(runs, scoring, base_runs, cpu=False)):.2f}x"
            bound_cpu = f"{median(bound_ratios(runs, scoring, base_runs, cpu=True)):.2f}x"
        print(
            f"{label:<20}{fmt_ratio(ttt):>19}{median(ttt_cpu):>8.2f}{median(total):>7.2f}"
            f"{median(total_cpu):>7.2f}{median(diff):>+12.2f}{median([r.kept for r in runs]):>7.3f}"
            f"{bound:>12}{bound_cpu:>7}"
        )


def _epochs(run: Run, cpu: bool) -> list[float]:
    cumulative = run.cpu_times if cpu else run.times
    return [b - a for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True)]


def bound_ratios(runs: list[Run], scoring: list[Run], base: list[Run], cpu: bool) -> list[float]:
    """A sifted epoch / (one scoring pass over the data + kept share of a training epoch).

    Epochs after the first are compared (the sift delay ends inside the first); each
    term is the median over epochs of that seed.
    """
    out = []
    for r, s, b in zip(runs, scoring, base, strict=True):
        sifted = _epochs(r, cpu)[1:] or _epochs(r, cpu)
        kept = r.kept
        out.append(median(sifted) / (median(_epochs(s, cpu)) + kept * median(_epochs(b, cpu))))
    return out


if __name__ == "__main__":
    main()
