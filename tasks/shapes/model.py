"""The miniature world's text-to-image model: Stable Diffusion's interface, CPU-sized.

The real SD v1 tokenizer, a small CLIP text encoder, a ``UNet2DConditionModel`` with
cross-attention (so every eraser that edits ``attn2`` works on it unchanged) and SD's
noise schedule, in an exact pixel-unshuffled space: a 32x32 RGB image is an 8x8x48
latent (:class:`~erasebench.pixel_decoder.PixelShuffleAutoencoder`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from erasebench.models import SD_V1_SCHEDULER, DiffusionModel, small_text_encoder
from erasebench.specs import ModelSpec
from erasebench.tokenizer import sd_tokenizer

MODEL_FOLDER = Path(__file__).parent / "weights" / "model"
IMAGE_SIZE = 32
FACTOR = 4


AUTOENCODER_FOLDER = Path(__file__).parent / "weights" / "autoencoder"


def build_shapes_model(seed: int = 0, text_width: int = 64, text_layers: int = 2,
                       channels: tuple[int, int] = (64, 128),
                       autoencoder: Path | None = AUTOENCODER_FOLDER) -> DiffusionModel:
    """A freshly initialised model (the training script's starting point).

    With ``autoencoder`` (the committed one by default) the UNet works on its 8x8 latents,
    as SD's works on its VAE's; with None, on the exact pixel-unshuffled 8x8x48 space.
    """
    # diffusers (and the decoder built on it) is imported here, not with the module: the
    # tasks' scoring imports this module for IMAGE_SIZE, and loading them stays quick.
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from erasebench.pixel_decoder import PixelShuffleAutoencoder

    tokenizer = sd_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = small_text_encoder(tokenizer, width=text_width, layers=text_layers,
                                          heads=2, intermediate=2 * text_width)
        if autoencoder is not None:
            vae = AutoencoderKL.from_pretrained(str(autoencoder), use_safetensors=True)
        else:
            vae = PixelShuffleAutoencoder(factor=FACTOR)
        latent_channels = int(vae.config.latent_channels if autoencoder is not None
                              else 3 * FACTOR**2)
        unet = UNet2DConditionModel(
            sample_size=IMAGE_SIZE // FACTOR, in_channels=latent_channels,
            out_channels=latent_channels, block_out_channels=channels, layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=text_width, attention_head_dim=4, norm_num_groups=16,
        )
    model = DiffusionModel(tokenizer, text_encoder, unet, vae, dict(SD_V1_SCHEDULER),
                           ModelSpec(id="shapes", revision="untrained"))
    return model.eval()
