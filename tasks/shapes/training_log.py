"""What the miniature world's training scripts share: the evaluation log and the config."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


class TrainingLog:
    """One entry per evaluation: step, mean loss since the last entry, seconds, scores."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._losses: list[float] = []
        self._started = time.time()

    def add_loss(self, loss: torch.Tensor) -> None:
        self._losses.append(float(loss.detach()))

    def record(self, step: int, scores: dict[str, float]) -> dict[str, Any]:
        entry = {"step": step, "loss": float(np.mean(self._losses)),
                 "seconds": round(time.time() - self._started, 1), **scores}
        self._losses = []
        self.entries.append(entry)
        print(json.dumps(entry), flush=True)
        return entry


def args_config(args: argparse.Namespace) -> dict[str, Any]:
    """The command's arguments as JSON-ready values (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
