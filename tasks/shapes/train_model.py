"""Trains the miniature world's text-to-image model:
``python -m erasebench.tasks.shapes.train_model --out FOLDER``.

Epsilon-prediction DDPM training on SD v1's noise schedule, on a pool of seeded renders
with captions (10% dropped to the empty prompt, for classifier-free guidance), UNet and
text encoder trained jointly, with an EMA copy. Every ``--eval-every`` steps the EMA
model draws "a {colour} {shape}" for every shape and colour and the in-tree classifier
reads the pictures: the log shows whether the prompt is followed, early.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from erasebench.generate import Generator
from erasebench.io import atomic_write_json
from erasebench.pixel_decoder import PixelShuffleAutoencoder
from erasebench.specs import GenerationSpec, PromptSpec
from erasebench.tasks.shapes.classifier import classify, load_classifier
from erasebench.tasks.shapes.model import AUTOENCODER_FOLDER, MODEL_FOLDER, build_shapes_model
from erasebench.tasks.shapes.render import COLOURS, SHAPES, balanced_batch, caption
from erasebench.tasks.shapes.training_log import TrainingLog, args_config


def prompt_grid(seed: int) -> tuple[list[PromptSpec], np.ndarray, np.ndarray]:
    """'a {colour} {shape}' for every shape and colour, with labels."""
    prompts, shapes, colours = [], [], []
    for s, shape in enumerate(SHAPES):
        for c, colour in enumerate(COLOURS):
            text = caption(shape, colour, "plain")
            prompts.append(PromptSpec(text=text, seed=seed + len(prompts)))
            shapes.append(s)
            colours.append(c)
    return prompts, np.array(shapes), np.array(colours)


def evaluate(model, classifier, seed: int = 0, steps: int = 20, guidance: float = 4.0,
             repeats: int = 1) -> dict[str, float]:
    generator = Generator(model, GenerationSpec(steps=steps, guidance=guidance), batch_size=80,
                          progress=False)
    scores = {"shape": [], "colour": []}
    for repeat in range(repeats):
        prompts, shapes, colours = prompt_grid(seed + 1000 * repeat)
        pixels = np.stack([np.asarray(image) for image in generator.images(prompts)])
        logits = classify(classifier, pixels)
        scores["shape"].append((logits["shape"].argmax(1).numpy() == shapes).mean())
        scores["colour"].append((logits["colour"].argmax(1).numpy() == colours).mean())
    return {f"{name}_acc": float(np.mean(values)) for name, values in scores.items()}


@torch.no_grad()
def encode_images(model, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Training latents: the autoencoder's (scaled, as SD's) or the pixel-unshuffled pixels."""
    if isinstance(model.vae, PixelShuffleAutoencoder):
        return model.vae.encode_pixels(images)
    parts = [model.vae.encode(images[i : i + batch_size]).latent_dist.mode()
             for i in range(0, len(images), batch_size)]
    return torch.cat(parts) * model.vae.config.scaling_factor


def x0_emphasis(alphas_cumprod: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-timestep loss weight 1 + min(1/SNR, cap) on the epsilon loss.

    Why: at high noise the epsilon error hardly depends on knowing the picture (x_t is
    almost all noise), so the plain epsilon loss gives the prompt almost no gradient. The
    x0 error there is the epsilon error times sqrt(1/SNR); adding that term (capped)
    makes shape and colour, which only the prompt can tell at high noise, worth learning.
    ``cap=0`` is the plain epsilon loss.
    """
    inverse_snr = (1 - alphas_cumprod) / alphas_cumprod
    return 1 + inverse_snr.clamp(max=cap)


def sample_timesteps(count: int, high_noise_share: float,
                     generator: torch.Generator) -> torch.Tensor:
    """Uniform timesteps, with ``high_noise_share`` of them drawn from t in [600, 1000).

    Why: in pixel space the picture is plainly visible below t of about 600 on SD's
    schedule, so there the noise can be predicted without reading the prompt; only at
    high noise does the text decide shape and colour. Uniform sampling spends most
    steps where the prompt is not needed, and the prompt is then barely learned.
    """
    uniform = torch.randint(0, 1000, (count,), generator=generator)
    high = torch.randint(600, 1000, (count,), generator=generator)
    pick = torch.rand(count, generator=generator) < high_noise_share
    return torch.where(pick, high, uniform)


@torch.no_grad()
def text_effect(model, t: int = 900) -> float:
    """How much the prompt moves the noise prediction at high noise, relative to its size."""
    noise = torch.randn((8, *_latent_shape(model)), generator=torch.Generator().manual_seed(0))
    timestep = torch.full((8,), t)
    a = model.unet(noise, timestep, encoder_hidden_states=model.encode_text(
        ["a red circle", "a blue star", "a green heart", "a white cross"] * 2)).sample
    b = model.unet(noise, timestep, encoder_hidden_states=model.encode_text(
        ["a yellow arrow", "a purple ring", "a cyan square", "an orange moon"] * 2)).sample
    return float((a - b).abs().mean() / a.abs().mean())


def _latent_shape(model) -> tuple[int, int, int]:
    side = model.unet.config.sample_size
    return (model.unet.config.in_channels, side, side)


class EMA:
    def __init__(self, modules: list[nn.Module], decay: float) -> None:
        self.decay = decay
        self.shadow = [copy.deepcopy(m).eval().requires_grad_(False) for m in modules]
        self.modules = modules

    @torch.no_grad()
    def update(self) -> None:
        for shadow, live in zip(self.shadow, self.modules, strict=True):
            for s, p in zip(shadow.parameters(), live.parameters(), strict=True):
                s.lerp_(p, 1 - self.decay)


def train(args: argparse.Namespace) -> dict[str, object]:
    from diffusers import DDPMScheduler

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model = build_shapes_model(args.seed, text_width=args.text_width,
                               channels=(args.channels, 2 * args.channels),
                               autoencoder=None if args.pixel_space else AUTOENCODER_FOLDER)
    noise_schedule = DDPMScheduler.from_config(model.scheduler_config)
    classifier = load_classifier()

    pool = balanced_batch(args.pool, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    texts = [caption(*_names(pool, i), int(rng.integers(4))) for i in range(args.pool)]
    ids = model.token_ids(texts)
    empty = model.token_ids([""])[0]
    images = torch.as_tensor(pool.images).permute(0, 3, 1, 2).float() / 127.5 - 1
    latents = encode_images(model, images)

    loss_weights = x0_emphasis(noise_schedule.alphas_cumprod, args.x0_weight_cap)
    model.unet.train().requires_grad_(True)
    model.text_encoder.train().requires_grad_(True)
    parameters = list(model.unet.parameters()) + list(model.text_encoder.parameters())
    optimiser = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=0.0)
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / args.warmup))
    ema = EMA([model.unet, model.text_encoder], args.ema)
    log = TrainingLog()
    for step in range(1, args.steps + 1):
        index = torch.randint(0, args.pool, (args.batch_size,), generator=generator)
        tokens = ids[index].clone()
        drop = torch.rand(args.batch_size, generator=generator) < args.caption_dropout
        tokens[drop] = empty
        clean = latents[index]
        noise = torch.randn(clean.shape, generator=generator)
        t = sample_timesteps(args.batch_size, args.high_noise_share, generator)
        noisy = noise_schedule.add_noise(clean, noise, t)
        context = model.text_encoder(tokens)[0]
        predicted = model.unet(noisy, t, encoder_hidden_states=context).sample
        per_sample = (predicted - noise).pow(2).mean(dim=(1, 2, 3))
        loss = (per_sample * loss_weights[t]).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        warmup.step()
        ema.update()
        log.add_loss(loss)
        if step % args.eval_every == 0 or step == args.steps:
            log.record(step, _evaluate_ema(model, ema, classifier))
            _save(model, ema, args.out)
    return {"log": log.entries}


def _names(pool, i: int) -> tuple[str, str, str]:
    from erasebench.tasks.shapes.render import TEXTURES

    return SHAPES[pool.shapes[i]], list(COLOURS)[pool.colours[i]], TEXTURES[pool.textures[i]]


def _evaluate_ema(model, ema: EMA, classifier) -> dict[str, float]:
    live = (model.unet, model.text_encoder)
    model.unet, model.text_encoder = ema.shadow
    model.set_fingerprint(None)
    try:
        return {**evaluate(model, classifier), "text_effect": text_effect(model)}
    finally:
        model.unet, model.text_encoder = live
        model.set_fingerprint(None)


def _save(model, ema: EMA, folder: Path) -> None:
    saved = copy.copy(model)
    saved.unet, saved.text_encoder = ema.shadow
    save_half(saved, folder)


def save_half(model, folder: Path) -> None:
    """Writes the model with every component in float16 (how the weights are committed:
    15 MB instead of 26; the loader reads them back in float32)."""
    saved = copy.copy(model)
    saved.unet, saved.text_encoder, saved.vae = (
        copy.deepcopy(part).half() for part in (model.unet, model.text_encoder, model.vae))
    saved.save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=MODEL_FOLDER)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500,
                        help="the committed weights are the EMA after 1,500 steps")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--pool", type=int, default=40_000, help="renders to train on")
    parser.add_argument("--caption-dropout", type=float, default=0.1)
    parser.add_argument("--x0-weight-cap", type=float, default=20.0,
                        help="cap of the 1/SNR loss weight added at high noise (0: off)")
    parser.add_argument("--high-noise-share", type=float, default=0.5,
                        help="share of timesteps drawn from [600, 1000)")
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--text-width", type=int, default=48)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--pixel-space", action="store_true",
                        help="train on the pixel-unshuffled 8x8x48 space, not the autoencoder's")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = train(args)
    atomic_write_json(args.out / "training_log.json", {"config": args_config(args), **results})


if __name__ == "__main__":
    main()
