"""Trains the miniature world's autoencoder (a small diffusers ``AutoencoderKL``, 32x32 RGB
to an 8x8 latent, like SD's VAE at 1/16 the size):
``python -m erasebench.tasks.shapes.train_autoencoder --out FOLDER``.

Why: a UNet on the 48-channel pixel-unshuffled latent first has to learn a near-identity
map of 48 noisy channels and did not get past that in 1,000 CPU steps (see README); SD's
latents have 4 channels. MSE reconstruction with a tiny KL term, as a seeded run; every
``--eval-every`` steps the in-tree classifier reads reconstructions of renders of an
unseen seed, so the log shows whether shape, colour and texture survive the round trip.
The latent scaling factor is set from the data at the end (1 / std), as SD's was.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from erasebench.io import atomic_write_json
from erasebench.tasks.shapes.classifier import classify, load_classifier
from erasebench.tasks.shapes.render import balanced_batch
from erasebench.tasks.shapes.training_log import TrainingLog, args_config

AUTOENCODER_FOLDER = Path(__file__).parent / "weights" / "autoencoder"


def build_autoencoder(seed: int, latent_channels: int, widths: tuple[int, ...]):  # AutoencoderKL
    from diffusers import AutoencoderKL

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKL(
            in_channels=3, out_channels=3, block_out_channels=widths, layers_per_block=1,
            latent_channels=latent_channels, norm_num_groups=16, sample_size=32,
            down_block_types=("DownEncoderBlock2D",) * len(widths),
            up_block_types=("UpDecoderBlock2D",) * len(widths),
        )


def to_unit(images: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_pixels(tensor: torch.Tensor) -> np.ndarray:
    return ((tensor.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def round_trip_scores(autoencoder, classifier, batch) -> dict[str, float]:
    """Classifier accuracy on reconstructions, and PSNR (dB) against the renders."""
    autoencoder.eval()
    recon = []
    for start in range(0, len(batch.images), 200):
        x = to_unit(batch.images[start : start + 200])
        recon.append(autoencoder.decode(autoencoder.encode(x).latent_dist.mode()).sample)
    pixels = to_pixels(torch.cat(recon))
    logits = classify(classifier, pixels)
    labels = {"shape": batch.shapes, "colour": batch.colours, "texture": batch.textures}
    scores = {f"{name}_acc": float((logits[name].argmax(1).numpy() == truth).mean())
              for name, truth in labels.items()}
    error = ((pixels.astype(float) - batch.images.astype(float)) ** 2).mean()
    scores["psnr"] = float(10 * np.log10(255**2 / max(error, 1e-9)))
    autoencoder.train()
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=AUTOENCODER_FOLDER)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--kl-weight", type=float, default=1e-6)
    parser.add_argument("--latent-channels", type=int, default=8)
    parser.add_argument("--pool", type=int, default=20_000, help="renders to train on")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    autoencoder = build_autoencoder(args.seed, args.latent_channels, (32, 64, 64)).train()
    classifier = load_classifier()
    pool = to_unit(balanced_batch(args.pool, seed=args.seed).images)
    held_out = balanced_batch(600, seed=args.seed + 20_000)
    optimiser = torch.optim.AdamW(autoencoder.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=args.steps)
    log = TrainingLog()
    for step in range(1, args.steps + 1):
        x = pool[torch.randint(0, args.pool, (args.batch_size,), generator=generator)]
        posterior = autoencoder.encode(x).latent_dist
        recon = autoencoder.decode(posterior.sample(generator)).sample
        loss = (recon - x).pow(2).mean() + args.kl_weight * posterior.kl().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        log.add_loss(loss)
        if step % args.eval_every == 0 or step == args.steps:
            log.record(step, round_trip_scores(autoencoder, classifier, held_out))
    autoencoder.eval()
    with torch.no_grad():
        latents = autoencoder.encode(pool[:2000]).latent_dist.mode()
    autoencoder.register_to_config(scaling_factor=float(1 / latents.std()))
    autoencoder.save_pretrained(str(args.out), safe_serialization=True)
    atomic_write_json(args.out / "training_log.json",
                      {"config": args_config(args), "log": log.entries})
    print(f"wrote {args.out}; scaling factor {autoencoder.config.scaling_factor:.4f}")


if __name__ == "__main__":
    main()
