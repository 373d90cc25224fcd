"""A parameter-free 'autoencoder' for small pixel-space models: latents are the image's
pixels rearranged into channels (pixel unshuffle), so decoding is exact and free.

It plays the VAE's part in :class:`~erasebench.models.DiffusionModel` for the miniature
world: a 32x32 RGB image is an 8x8x48 latent with ``factor=4``. Stable Diffusion keeps
its real VAE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch.nn import functional


@dataclass
class DecodedImages:
    sample: torch.Tensor  # (n, 3, H, W) in [-1, 1], like AutoencoderKL.decode(...).sample


class PixelShuffleAutoencoder(ModelMixin, ConfigMixin):  # type: ignore[misc]
    """encode: image (n, 3, H, W) -> (n, 3·f², H/f, W/f); decode is its exact inverse."""

    config_name = "config.json"  # type: ignore[assignment]

    @register_to_config
    def __init__(self, factor: int = 4, in_channels: int = 3, scaling_factor: float = 1.0,
                 block_out_channels: tuple[int, ...] | None = None):
        # diffusers' pipelines derive the VAE's scale as 2 ** (len(block_out_channels) - 1);
        # this placeholder makes that equal ``factor``, so StableDiffusionPipeline loads us.
        super().__init__()
        if block_out_channels is None:
            self.register_to_config(block_out_channels=(1,) * (int(factor).bit_length()))
        # One stored tensor, so that save/from_pretrained write and expect a weights file
        # like any other component.
        self.register_buffer("factor_tensor", torch.tensor(float(factor)))
        self.factor, self.in_channels = int(factor), int(in_channels)

    @property
    def latent_channels(self) -> int:
        return int(self.in_channels * self.factor**2)

    def encode_pixels(self, images: torch.Tensor) -> torch.Tensor:
        return functional.pixel_unshuffle(images, self.factor)

    def decode(self, latents: torch.Tensor, return_dict: bool = True,
               generator: torch.Generator | None = None) -> DecodedImages | tuple[torch.Tensor]:
        images = functional.pixel_shuffle(latents, self.factor)
        return DecodedImages(images) if return_dict else (images,)
