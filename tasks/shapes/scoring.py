"""What the miniature world's tasks share: the classifier reading generated images,
its version for the result records, and the generation settings of the world.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from erasebench.errors import UserError
from erasebench.io import sha256_file
from erasebench.plugins import Task
from erasebench.scorers.weights import WeightFile
from erasebench.specs import GenerationSpec
from erasebench.tasks.shapes.classifier import WEIGHTS, ShapeClassifier, classify, load_classifier
from erasebench.tasks.shapes.model import IMAGE_SIZE

# Measured on the committed model (2 cores; `python -m erasebench.tasks.shapes.quality`):
# DPM-Solver with 6 steps draws 99.1% of 560 "a {colour} {shape}" images as the prompted
# shape and 100% as the prompted colour; 8 steps 100% / 100% at a third more time;
# DDIM needs 20 steps (three times the cost of 6) for the same. The default run's budget
# (15 minutes on 2 cores) is what chose 6.
SHAPES_GENERATION = GenerationSpec(scheduler="dpm", steps=6, guidance=4.0)


@lru_cache(maxsize=4)
def _classifier(device: str) -> ShapeClassifier:
    return load_classifier(WEIGHTS, device)


def read_images(images: Sequence[Image.Image], device: str = "cpu") -> dict[str, torch.Tensor]:
    """The classifier's logits per head (``shape``, ``colour``, ``texture``) for each image."""
    if not images:
        return {}
    sizes = {image.size for image in images}
    if sizes != {(IMAGE_SIZE, IMAGE_SIZE)}:
        raise UserError(
            f"the miniature world's tasks read {IMAGE_SIZE}x{IMAGE_SIZE} images from its own "
            f"model (--model shapes); got sizes {sorted(sizes)}")
    pixels = np.stack([np.asarray(image.convert("RGB")) for image in images])
    with torch.no_grad():
        return classify(_classifier(device), pixels)


@lru_cache(maxsize=1)
def classifier_version() -> dict[str, str]:
    return {"shapes_classifier": f"sha256:{sha256_file(WEIGHTS)[:16]}"}


class ShapesTask(Task):
    """Base of the miniature world's tasks: its model, its sampler, its classifier."""

    version = "1"
    in_default_run = True
    default_model = "shapes"

    def generation(self) -> GenerationSpec:
        return SHAPES_GENERATION

    def scorer_versions(self) -> dict[str, str]:
        return classifier_version()

    def weight_files(self) -> list[WeightFile]:
        return [WeightFile(scorer="shapes classifier", path=WEIGHTS,
                           source="the erasebench package (committed, trained in-tree)",
                           where="inside the installed package")]
