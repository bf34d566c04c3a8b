"""Script-mode training of a small MLP on scikit-learn's digits, with loss-based sifting.

Runs unchanged on SageMaker's PyTorch container and under `trainspec run --local`: the
hyperparameters arrive as `--name value` arguments, the data in SM_CHANNEL_TRAIN and
SM_CHANNEL_VALIDATION, the sifting settings in TRAINSPEC_SIFTING; the model goes to
SM_MODEL_DIR and a checkpoint per epoch to the checkpoint directory, so a stopped or
killed run resumes where it left off.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "data/train"))
    parser.add_argument(
        "--validation", default=os.environ.get("SM_CHANNEL_VALIDATION", "data/validation")
    )
    # SageMaker's checkpoint folder is /opt/ml/checkpoints (synced with checkpoint.s3_uri);
    # a local run's job folder plays /opt/ml and says so in SAGEMAKER_BASE_DIR.
    base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
    parser.add_argument("--checkpoints", default=os.path.join(base, "checkpoints"))
    # Unknown arguments are ignored, as SageMaker may pass ones this script does not use.
    return parser.parse_known_args()[0]


def load_channel(folder: str) -> TensorDataset:
    """Every *.csv / *.csv.gz in the channel: label first, then 64 pixel columns."""
    files = sorted(Path(folder).glob("*.csv*"))
    if not files:
        raise SystemExit(f"no CSV files in channel {folder}")
    rows = np.concatenate([np.loadtxt(f, delimiter=",", skiprows=1) for f in files])
    features = torch.tensor(rows[:, 1:] / 16.0, dtype=torch.float32)
    labels = torch.tensor(rows[:, 0], dtype=torch.long)
    return TensorDataset(features, labels)


def make_sifter(loader: DataLoader, model: nn.Module, epochs: int):
    """The sifting loader TRAINSPEC_SIFTING asks for, or None when sifting is off."""
    if not os.environ.get("TRAINSPEC_SIFTING"):
        return None
    try:
        from trainspec.trainer.sifting import Loss, config_from_env, from_config
    except ImportError:
        print("note: trainspec.trainer.sifting is not installed; training without sifting")
        return None

    class CrossEntropy(Loss):
        def loss(self, model, transformed_batch, original_batch=None):
            features, labels = transformed_batch
            return F.cross_entropy(model(features), labels, reduction="none")

    config = config_from_env()
    if config is None:
        return None
    print(f"sifting: {type(config).__name__}")
    return from_config(config, loader, model, CrossEntropy(), epochs=epochs, seed=0)


def evaluate(model: nn.Module, data: TensorDataset) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        features, labels = data.tensors
        logits = model(features)
        loss = F.cross_entropy(logits, labels).item()
        accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
    model.train()
    return loss, accuracy


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # tiny model: threads cost more than they give
    train, validation = load_channel(args.train), load_channel(args.validation)
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True)
    sifter = make_sifter(loader, model, args.epochs)

    checkpoint = Path(args.checkpoints) / "checkpoint.pt"
    start_epoch = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"]
        print(f"resumed from {checkpoint} after epoch {start_epoch}")

    for epoch in range(start_epoch + 1, args.epochs + 1):
        total, count = 0.0, 0
        for features, labels in sifter if sifter is not None else loader:
            losses = F.cross_entropy(model(features), labels, reduction="none")
            loss = sifter.report(losses) if sifter is not None else losses.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += losses.sum().item()
            count += len(labels)
        val_loss, val_accuracy = evaluate(model, validation)
        # The job's metric definitions read these lines (see job.yaml).
        print(
            f"epoch={epoch} train_loss={total / max(count, 1):.4f} samples={count} "
            f"validation_loss={val_loss:.4f} validation_accuracy={val_accuracy:.4f}",
            flush=True,
        )
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        temp = checkpoint.with_suffix(".tmp")
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch},
            temp,
        )
        temp.replace(checkpoint)

    if start_epoch >= args.epochs:  # resumed after the last epoch: report the result again
        val_loss, val_accuracy = evaluate(model, validation)
        print(f"validation_loss={val_loss:.4f} validation_accuracy={val_accuracy:.4f}")

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / "model.pt")
    (model_dir / "model.json").write_text(
        json.dumps({"inputs": 64, "hidden": args.hidden, "classes": 10}) + "\n"
    )


if __name__ == "__main__":
    main()
