"""The miniature world's training scripts, run for a few steps as their users run them
(``python -m erasebench.tasks.shapes.train_...``): what they write loads back as the
benchmark loads the committed weights, with the training log beside it."""

import json
import sys

import numpy as np
import pytest
import torch

from erasebench.models import load_model
from erasebench.specs import GenerationSpec, ModelSpec, PromptSpec
from erasebench.tasks.shapes import train_autoencoder, train_model
from erasebench.tasks.shapes.render import balanced_batch


def _run(monkeypatch, module, *argv):
    """``module``'s command line in this process, which keeps its thread count and random
    state (the scripts set both for themselves)."""
    monkeypatch.setattr(sys, "argv", [module.__name__, *argv])
    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng():
            module.main()
    finally:
        torch.set_num_threads(threads)


def test_the_autoencoder_trainer_writes_a_loadable_autoencoder_scaled_to_its_latents(
        tmp_path, monkeypatch):
    from diffusers import AutoencoderKL

    out = tmp_path / "autoencoder"
    _run(monkeypatch, train_autoencoder, "--out", str(out), "--steps", "2", "--batch-size",
         "4", "--pool", "16", "--eval-every", "2", "--latent-channels", "4", "--threads", "1")
    autoencoder = AutoencoderKL.from_pretrained(str(out), use_safetensors=True).eval()
    pool = train_autoencoder.to_unit(balanced_batch(16, seed=0).images)  # its training renders
    with torch.no_grad():
        latents = autoencoder.encode(pool).latent_dist.mode()
    assert latents.shape == (16, 4, 8, 8)
    # SD's convention, set from the data: scaled latents have unit spread
    assert autoencoder.config.scaling_factor == pytest.approx(float(1 / latents.std()),
                                                              rel=1e-4)
    log = json.loads((out / "training_log.json").read_text())
    assert log["config"]["steps"] == 2 and log["config"]["out"] == str(out)
    (entry,) = log["log"]
    assert entry["step"] == 2 and all(0 <= entry[f"{name}_acc"] <= 1
                                      for name in ("shape", "colour", "texture"))


def test_the_model_trainer_writes_a_half_precision_model_the_benchmark_loads(
        tmp_path, monkeypatch):
    out = tmp_path / "model"
    _run(monkeypatch, train_model, "--out", str(out), "--steps", "2", "--batch-size", "4",
         "--pool", "32", "--channels", "16", "--text-width", "16", "--eval-every", "2",
         "--threads", "1")
    log = json.loads((out / "training_log.json").read_text())
    (entry,) = log["log"]
    assert entry["step"] == 2 and 0 <= entry["shape_acc"] <= 1 and entry["text_effect"] > 0
    model = load_model(ModelSpec(id=str(out)))
    weights = torch.cat([p.detach().flatten() for p in model.unet.parameters()])
    assert weights.dtype == torch.float32  # read back in float32...
    assert torch.equal(weights, weights.half().float())  # ...from the float16 written
    fresh = train_model.build_shapes_model(0, text_width=16, channels=(16, 32),
                                           autoencoder=train_model.AUTOENCODER_FOLDER)
    assert not torch.equal(weights, torch.cat([p.detach().flatten()
                                               for p in fresh.unet.parameters()]))  # trained
    from erasebench.generate import Generator

    (image,) = Generator(model, GenerationSpec(steps=2, guidance=4.0), batch_size=1,
                         progress=False).images([PromptSpec(text="a red circle", seed=0)])
    assert image.size == (32, 32) and np.asarray(image).std() > 0
