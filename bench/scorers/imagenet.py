"""ResNet-50 ImageNet classifier (torchvision), as the Imagenette protocol uses it.

Weights: ``IMAGENET1K_V2`` by default (``ResNet50_Weights.DEFAULT``, what AP/AGE used),
``IMAGENET1K_V1`` as an option; each with its own transforms (V2: resize 232, crop 224).
They are read from torch hub's cache (``$TORCH_HOME/hub/checkpoints/<file>``) or an
explicit path, with ``torch.load(weights_only=True)`` (the format torchvision publishes);
without network a missing file is a clear error naming the file and where it goes.
Labels match the papers: lower-cased class name against torchvision's category string.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from erasebench.errors import UnknownNameError, UserError
from erasebench.memory import in_fitting_batches
from erasebench.scorers.weights import WeightFile, torch_hub_file

VARIANTS = ("IMAGENET1K_V2", "IMAGENET1K_V1")


class ImageNetClassifier:
    """Batched ResNet-50 logits for PIL images; loads its weights on first use."""

    def __init__(self, weights: str = "IMAGENET1K_V2", device: str = "cpu",
                 weights_path: str | Path | None = None, batch_size: int = 64) -> None:
        from torchvision.models import ResNet50_Weights

        if weights not in VARIANTS:
            raise UnknownNameError("ResNet-50 weights", weights, VARIANTS)
        self.weights = ResNet50_Weights[weights]
        self.device, self.batch_size = device, batch_size
        self.path = Path(weights_path) if weights_path else default_weights_path(weights)
        self.weight_file = WeightFile.torch_hub(f"ResNet-50 {weights}", self.weights.url,
                                                "classifier_weights", self.path)
        self.categories: list[str] = list(self.weights.meta["categories"])
        self._model: torch.nn.Module | None = None

    def class_index(self, label: str) -> int:
        """The ImageNet index of a class name as the papers match it (case-insensitive)."""
        lowered = [category.lower() for category in self.categories]
        try:
            return lowered.index(label.lower())
        except ValueError:
            raise UserError(f"{label!r} is not an ImageNet category name "
                            "(torchvision's ResNet50_Weights meta['categories'])") from None

    def model(self) -> torch.nn.Module:
        if self._model is None:
            from torchvision.models import resnet50

            network = resnet50()
            network.load_state_dict(self._state_dict())
            self._model = network.to(self.device).eval().requires_grad_(False)
        return self._model

    def _state_dict(self) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor]
        state = torch.load(self.weight_file.ensure(), map_location="cpu", weights_only=True)
        return state

    @torch.no_grad()
    def logits(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(n, 1000) logits, computed in batches (halved out of device memory,
        ``erasebench.memory.in_fitting_batches``) with the weights' own transforms."""
        transform, model = self.weights.transforms(), self.model()

        def batch_logits(part: slice) -> torch.Tensor:
            batch = torch.stack([transform(image.convert("RGB")) for image in images[part]])
            return model(batch.to(self.device)).float().cpu()

        outputs, self.batch_size = in_fitting_batches(len(images), self.batch_size,
                                                      batch_logits)
        return torch.cat(outputs) if outputs else torch.zeros(0, len(self.categories))

    def version(self) -> str:
        """Recorded with every result: architecture, weights, torchvision, file hash."""
        import torchvision

        return f"resnet50 {self.weights.name} torchvision {torchvision.__version__} " \
               f"{self.weight_file.version()}"


def default_weights_path(weights: str = "IMAGENET1K_V2") -> Path:
    from torchvision.models import ResNet50_Weights

    return torch_hub_file(Path(ResNet50_Weights[weights].url).name)
