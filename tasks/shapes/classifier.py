"""The miniature world's scorer: a small CNN with a shape, a colour and a texture head.

Plays the role ResNet-50 plays for Imagenette. Trained in-tree by
``python -m erasebench.tasks.shapes.train_classifier``; the weights ship as safetensors
beside this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from erasebench.errors import UserError
from erasebench.tasks.shapes.render import COLOURS, SHAPES, TEXTURES

WEIGHTS = Path(__file__).parent / "weights" / "classifier.safetensors"
HEADS = {"shape": len(SHAPES), "colour": len(COLOURS), "texture": len(TEXTURES)}


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(),
        nn.Conv2d(outputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(),
        nn.MaxPool2d(2),
    )


class ShapeClassifier(nn.Module):
    """32x32 RGB -> logits per head. Inputs are uint8 images or floats in [0, 1]."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(3, width), _block(width, 2 * width), _block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.heads = nn.ModuleDict({
            name: nn.Sequential(nn.Linear(16 * width, 128), nn.ReLU(), nn.Linear(128, classes))
            for name, classes in HEADS.items()
        })
        self.width = width

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(images * 2 - 1)
        return {name: head(features) for name, head in self.heads.items()}


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, 32, 32) floats in [0, 1] (resized if H != 32)."""
    tensor = torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0
    if tensor.shape[-1] != 32:
        tensor = nn.functional.interpolate(tensor, size=(32, 32), mode="area")
    return tensor


def save_classifier(model: ShapeClassifier, path: str | Path, extra: dict[str, str]) -> None:
    from safetensors.torch import save_model

    from erasebench.io import atomic_write

    metadata = {"width": str(model.width), **extra}
    atomic_write(path, lambda tmp: save_model(model, str(tmp), metadata))


def load_classifier(path: str | Path = WEIGHTS, device: str = "cpu") -> ShapeClassifier:
    from safetensors import safe_open
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"shape classifier weights not found at {path}; train them with "
            "`python -m erasebench.tasks.shapes.train_classifier`")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    model = ShapeClassifier(int(metadata.get("width", 32)))
    load_model(model, str(path))
    return model.to(device).eval().requires_grad_(False)


@torch.no_grad()
def classify(model: ShapeClassifier, images: np.ndarray, batch_size: int = 512
             ) -> dict[str, torch.Tensor]:
    """Logits per head for uint8 images (n, H, W, 3)."""
    device = next(model.parameters()).device
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in HEADS}
    for start in range(0, len(images), batch_size):
        logits = model(to_input(images[start : start + batch_size]).to(device))
        for name, value in logits.items():
            outputs[name].append(value.cpu())
    return {name: torch.cat(values) for name, values in outputs.items()}


def metadata_of(path: str | Path = WEIGHTS) -> dict[str, object]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        raw = handle.metadata() or {}
    return {key: json.loads(value) if value[:1] in "{[" else value for key, value in raw.items()}
