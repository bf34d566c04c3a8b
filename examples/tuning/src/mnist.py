"""Stand-in training script for the tuning examples: reads the hyperparameters SageMaker
passes, fits a small model, and logs `validation rmse: X` once per epoch so AMT's metric
regex, early stopping and Hyperband can follow it.

Uses the data channel when SageMaker provides one (SM_CHANNEL_TRAIN with a `data.pt`
holding `(x, y)` tensors) and a small synthetic regression set otherwise, so it also
runs on a laptop: `python mnist.py --epochs 3 --lr 0.01 --batch-size 32`.
"""

import argparse
import os
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--backend", default="gloo")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    parser.add_argument("--activation", default="relu", choices=["relu", "gelu"])
    args, _ = parser.parse_known_args()

    torch.manual_seed(0)
    x, y = _data()
    split = int(0.8 * len(x))
    act = torch.nn.ReLU() if args.activation == "relu" else torch.nn.GELU()
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), act, torch.nn.Linear(64, 1))
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    elif args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    for epoch in range(args.epochs):
        order = torch.randperm(split)
        for start in range(0, split, args.batch_size):
            batch = order[start : start + args.batch_size]
            loss = torch.nn.functional.mse_loss(model(x[batch]).squeeze(1), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = model(x[split:]).squeeze(1)
            rmse = torch.sqrt(torch.mean((pred - y[split:]) ** 2)).item()
            accuracy = (torch.abs(pred - y[split:]) < 0.5).float().mean().item()
        print(f"epoch {epoch + 1} validation rmse: {rmse:.6f}")
        print(f"epoch {epoch + 1} validation accuracy: {accuracy:.6f}")

    model_dir = Path(os.environ.get("SM_MODEL_DIR", "model"))
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / "model.pt")


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    channel = os.environ.get("SM_CHANNEL_TRAIN")
    if channel and (Path(channel) / "data.pt").exists():
        return torch.load(Path(channel) / "data.pt")
    x = torch.randn(2048, 16)
    y = x @ torch.linspace(-1, 1, 16) + 0.1 * torch.randn(2048)
    return x, y


if __name__ == "__main__":
    main()
