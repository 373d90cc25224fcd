"""Scorers: the pretrained models that read generated images (ResNet-50, NudeNet, CLIP,
LPIPS, FID). Each loads its real weights lazily, runs batched on the GPU when there is
one, reports its version and weight hash, and says exactly where to put a missing file.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar, cast

T = TypeVar("T")


@lru_cache(maxsize=16)
def _shared(cls: type, args: tuple[Any, ...], locations: tuple[str, ...]) -> Any:
    return cls(*args)


def shared(cls: type[T], *args: Any) -> T:
    """One scorer per (class, arguments) per process: every unit a worker scores reuses the
    loaded weights instead of reading hundreds of MB again. Default weight paths depend on
    TORCH_HOME and the Hugging Face cache, so a scorer is only reused while they are the
    same."""
    import torch
    from huggingface_hub import constants

    locations = (torch.hub.get_dir(), str(constants.HF_HUB_CACHE))
    scorer: T = _shared(cast(Any, cls), args, locations)
    return scorer
