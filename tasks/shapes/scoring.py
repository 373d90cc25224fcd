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
from erasebench.specs import GenerationSpec
from erasebench.tasks.shapes.classifier import WEIGHTS, ShapeClassifier, classify, load_classifier
from erasebench.tasks.shapes.model import IMAGE_SIZE

# Measured on the committed model (2 cores, 240 prompts of every shape, colour and
# texture): DPM-Solver with 8 steps reads 100% / 100% / 100% (shape / colour / texture)
# at 23 ms per image; DDIM needs 20 steps (68 ms) for 100% / 100% / 99.6%.
SHAPES_GENERATION = GenerationSpec(scheduler="dpm", steps=8, guidance=4.0)


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
