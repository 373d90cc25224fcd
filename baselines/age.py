"""``age``: Adaptive Guided Erasure (Bui et al., ICLR 2025).

AP's structure with one change: the erased concept is not steered away from the empty
prompt but mapped to an adaptively chosen target concept c_t = w · M drawn by the same
Gumbel-softmax search, which is also the concept preserved:

    L(θ) = ‖x̂₀(ε_θ(z, c_e)) − [x̂₀(ε*(z, c_t)) − η (x̂₀(ε*(z, c_e)) − x̂₀(ε*(z, c_t)))]‖²
           + λ ‖x̂₀(ε_θ(z_t, c_t)) − x̂₀(ε*(z_t, c_t))‖².

c_t is detached in the erasure term, so π (maximising the summed loss) moves only through
the preservation term: min over the model, max over the target among the concepts near
the erased one. Defaults are the paper's object-erasure settings: the ImageNet class
names as vocabulary, the 100 nearest, 100 centres, τ 0.1, hard draws mixing the top 2.
"""

from __future__ import annotations

from typing import Any

import torch

from erasebench.baselines.ap import SHAPES_PRESET as AP_SHAPES
from erasebench.baselines.ap import TINY_PRESET as AP_TINY
from erasebench.baselines.ap import AdversarialPreservation, APConfig
from erasebench.registry import register_eraser


class AGEConfig(APConfig):
    vocabulary: str = "imagenet"
    nearest: int = 100
    centres: int = 100
    temperature: float = 0.1
    top_k: int = 2


# Miniature world: as AP's, with the paper's τ and top 2, and, as the paper searches the
# ImageNet class names for objects (the kind of concept it erases), the ten shape names
# (less the erased ones) instead of all the world's words. Measured on the four splits
# (30 images per shape): shape names ESR-1 87.5 ± 8.5 / PSR-1 46.5 ± 15.5; all the
# world's words 86.0 ± 16.0 / 54.7 ± 20.2, with colour and texture words as targets.
SHAPES_PRESET: dict[str, Any] = {**AP_SHAPES, "temperature": 0.1, "top_k": 2,
                                 "vocabulary": "shape_names", "nearest": 9, "centres": 9}
TINY_PRESET: dict[str, Any] = {**AP_TINY, "top_k": 2}


@register_eraser("age")
class AdaptiveGuidedErasure(AdversarialPreservation):
    """Maps the erased concept to the nearby concept the erasure would hurt most."""

    Config = AGEConfig
    presets = {"shapes": SHAPES_PRESET, "tiny": TINY_PRESET}

    def neutral(self, empty: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
        return found
