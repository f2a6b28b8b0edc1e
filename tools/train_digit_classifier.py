"""Train the small digit classifier whose features mini_diffusion.toolkit.metrics uses for the
Frechet distance, and write it to mini_diffusion/toolkit/weights/ with its manifest.

    python tools/train_digit_classifier.py

Seeded and deterministic on CPU; takes a few seconds. A random fifth of the 1797 digits is
held out to report the accuracy. Rerun it only to change the classifier: the Frechet ratios
the course reports are measured in its feature space.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mini_diffusion.toolkit import data
from mini_diffusion.toolkit.metrics import DIGIT_CLASSIFIER, DigitClassifier, sha256_of


def split(n: int, held_out: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    n_test = round(n * held_out)
    return order[n_test:], order[:n_test]


def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).double().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--held-out", type=float, default=0.2)
    parser.add_argument("--out", type=Path, default=DIGIT_CLASSIFIER)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and the result is reproducible
    generator = torch.Generator().manual_seed(args.seed)
    images, labels = data.digits(return_labels=True)
    train, test = split(len(images), args.held_out, generator)

    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = -(-len(train) // args.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * steps_per_epoch)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        for batch in train[torch.randperm(len(train), generator=generator)].split(args.batch_size):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    train_accuracy = accuracy(model, images[train], labels[train])
    test_accuracy = accuracy(model, images[test], labels[test])
    seconds = time.time() - start
    print(f"trained in {seconds:.1f} s: train accuracy {train_accuracy:.4f}, held-out accuracy {test_accuracy:.4f}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, args.out)
    manifest = {
        "name": "digit_classifier",
        "purpose": "feature extractor for mini_diffusion.toolkit.metrics.digits_fd_ratio (features = last hidden layer)",
        "config": model.config,
        "data": f"sklearn.datasets.load_digits, pixel/8 - 1; random split with seed {args.seed}: "
        f"{len(train)} train, {len(test)} held out",
        "held_out_accuracy": round(test_accuracy, 4),
        "train_accuracy": round(train_accuracy, 4),
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "lr_schedule": "cosine",
            "seconds": round(seconds, 1),
            "device": "cpu",
        },
        "seed": args.seed,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "command": "python tools/train_digit_classifier.py",
        "sha256": sha256_of(args.out),
    }
    args.out.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
