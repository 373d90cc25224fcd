import torch

from erasebench.models import DiffusionModel
from erasebench.pixel_decoder import PixelShuffleAutoencoder


def test_decode_inverts_encode_exactly():
    decoder = PixelShuffleAutoencoder(factor=4)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    latents = decoder.encode_pixels(images)
    assert latents.shape == (2, 48, 8, 8) and decoder.latent_channels == 48
    assert torch.equal(decoder.decode(latents).sample, images)
    assert torch.equal(decoder.decode(latents, return_dict=False)[0], images)


def test_a_pixel_space_model_saves_loads_and_exports(tmp_path):
    from diffusers import StableDiffusionPipeline

    from erasebench.tasks.shapes.model import build_shapes_model

    model = build_shapes_model(seed=0, text_width=16, channels=(16, 32), autoencoder=None)
    assert model.native_size == 32 and model.vae_scale == 4
    model.save_pretrained(tmp_path / "m")
    loaded = DiffusionModel.load(str(tmp_path / "m"))
    assert isinstance(loaded.vae, PixelShuffleAutoencoder)
    assert loaded.fingerprint == model.fingerprint
    pipeline = StableDiffusionPipeline.from_pretrained(tmp_path / "m")
    image = pipeline("a red circle", num_inference_steps=2, height=32, width=32,
                     output_type="np").images
    assert image.shape == (1, 32, 32, 3)
