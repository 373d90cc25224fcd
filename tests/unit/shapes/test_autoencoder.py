"""The committed miniature-world autoencoder: shape, colour and texture survive its round trip."""

import pytest
import torch

from erasebench.tasks.shapes.classifier import load_classifier
from erasebench.tasks.shapes.render import balanced_batch
from erasebench.tasks.shapes.train_autoencoder import (
    AUTOENCODER_FOLDER,
    build_autoencoder,
    round_trip_scores,
    to_pixels,
    to_unit,
)


def test_committed_autoencoder_keeps_what_the_classifier_reads():
    from diffusers import AutoencoderKL

    autoencoder = AutoencoderKL.from_pretrained(str(AUTOENCODER_FOLDER), use_safetensors=True)
    scores = round_trip_scores(autoencoder, load_classifier(), balanced_batch(300, seed=99_999))
    assert scores["shape_acc"] >= 0.95 and scores["colour_acc"] >= 0.95
    assert scores["texture_acc"] >= 0.9
    latent = autoencoder.encode(to_unit(balanced_batch(2, seed=1).images)).latent_dist.mode()
    assert latent.shape[1:] == (autoencoder.config.latent_channels, 8, 8)


def test_pixel_conversions_invert():
    images = balanced_batch(4, seed=3).images
    assert (to_pixels(to_unit(images)) == images).all()


@pytest.mark.parametrize("channels", [4, 8])
def test_builder_makes_an_8x8_latent(channels):
    autoencoder = build_autoencoder(0, channels, (16, 16, 16))
    with torch.no_grad():
        latent = autoencoder.encode(torch.zeros(1, 3, 32, 32)).latent_dist.mode()
    assert latent.shape == (1, channels, 8, 8)
