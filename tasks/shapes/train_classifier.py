"""Trains the shape classifier from renders: ``python -m erasebench.tasks.shapes.train_classifier``.

Seeded end to end (renders, initialisation, batches), single-threaded by default so the
same seed gives the same weights on any CPU. Writes the weights (safetensors, with the
training config and held-out accuracies in the metadata) and a JSON log beside them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from erasebench.io import atomic_write_json
from erasebench.tasks.shapes.classifier import (
    HEADS,
    WEIGHTS,
    ShapeClassifier,
    classify,
    save_classifier,
    to_input,
)
from erasebench.tasks.shapes.render import balanced_batch
from erasebench.tasks.shapes.training_log import args_config


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noise and a little blur, so that generated (imperfect) images are read too."""
    noise = torch.randn(images.shape, generator=generator) * torch.rand(
        len(images), 1, 1, 1, generator=generator) * 0.05
    blurred = nn.functional.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False)
    mix = (torch.rand(len(images), 1, 1, 1, generator=generator) < 0.3).float() * 0.5
    return (images * (1 - mix) + blurred * mix + noise).clamp(0, 1)


def accuracies(model: ShapeClassifier, batch) -> dict[str, float]:
    logits = classify(model.eval(), batch.images)
    labels = {"shape": batch.shapes, "colour": batch.colours, "texture": batch.textures}
    return {name: float((logits[name].argmax(1).numpy() == labels[name]).mean())
            for name in HEADS}


def train(seed: int, train_images: int, test_images: int, epochs: int, batch_size: int,
          lr: float, width: int) -> tuple[ShapeClassifier, dict[str, object]]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    data = balanced_batch(train_images, seed=seed)
    held_out = balanced_batch(test_images, seed=seed + 10_000)
    images = to_input(data.images)
    labels = {"shape": torch.as_tensor(data.shapes), "colour": torch.as_tensor(data.colours),
              "texture": torch.as_tensor(data.textures)}
    model = ShapeClassifier(width)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * (train_images // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    log: list[dict[str, float]] = []
    started = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(train_images, generator=generator)
        losses = []
        for start in range(0, train_images - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            logits = model(augment(images[index], generator))
            loss = sum(nn.functional.cross_entropy(logits[n], labels[n][index]) for n in HEADS)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
        scores = accuracies(model, held_out)
        log.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                    "seconds": round(time.time() - started, 1), **scores})
        print(json.dumps(log[-1]), flush=True)
    return model.eval(), {"log": log, "held_out": accuracies(model, held_out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="weights file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-images", type=int, default=24_000)
    parser.add_argument("--test-images", type=int, default=3_000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 makes the weights independent of the CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = args_config(args)
    model, results = train(args.seed, args.train_images, args.test_images, args.epochs,
                           args.batch_size, args.lr, args.width)
    save_classifier(model, args.out, {"config": json.dumps(config),
                                      "held_out": json.dumps(results["held_out"])})
    atomic_write_json(args.out.with_suffix(".log.json"), {"config": config, **results})
    print(f"wrote {args.out}; held-out accuracy {results['held_out']}")


if __name__ == "__main__":
    main()
