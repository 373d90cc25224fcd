"""Does the image cache keep pace with a GPU? Measured on any machine, in one run.

    python benchmarks/image_cache.py                  # a GPU at 4 images/s, 512 px
    python benchmarks/image_cache.py --rate 8 --images 128 --batch-size 32

Writes: every image the generator draws is written to the image cache as a PNG, about
50 ms of one core per 512 px image. The generator's sampling is replaced here by a
stand-in that waits as a GPU drawing ``--rate`` images/s would (the wait releases the GIL,
as waiting for CUDA does) and returns 512 px images that compress about as badly as photos
(a gradient with 8-bit noise). The script prints the generator's images/s without a cache,
with the cache written in line (each batch's PNGs written before the next batch is
sampled, as the generator did before) and with the generator's background writes, each as
a share of the stand-in's rate.

Reads: the same images read back, one after another (as the generator did before) and
as a slice of ``CachedImages`` (on the cache's threads), in images/s, and the time either
takes as a share of drawing them at ``--rate``: the share a run that reuses cached images
(the original model's, for every eraser) keeps the GPU waiting.

Run it on the machine that will generate: its cores decide.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import tempfile
import time

import numpy as np
import torch
from measure import timed

from erasebench.cache import ImageCache
from erasebench.generate import Generator
from erasebench.image_sequences import CachedImages
from erasebench.models import load_model
from erasebench.specs import GenerationSpec, ModelSpec, PromptSpec


def photo_like_images(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` gradients with 8-bit noise, uint8 (count, size, size, 3). Made one image at a
    time: the float and int64 temporaries of a whole batch would be 12 bytes per subpixel,
    and ``unit_memory.py`` measures memory."""
    ramp = np.linspace(0, 255, size)
    gradient = np.add.outer(ramp, ramp)[..., None] / 2
    images = np.empty((count, size, size, 3), np.uint8)
    for image in images:
        image[...] = (gradient + rng.integers(0, 20, (size, size, 3))).clip(0, 255)
    return images


@contextlib.contextmanager
def written_in_line(cache: ImageCache):
    """The cache's ``put`` itself, as the generator called it before writing in the background
    (then the image's claim released, as the background writer does)."""

    def put(key, image, meta, then=lambda: None) -> None:
        try:
            cache.put(key, image, meta)
        finally:
            then()

    yield put


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=4.0,
                        help="images/s of the GPU stood in for (an H100 drew 4.2 at 50 steps)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    def stand_in(prompts, conditioning=None) -> np.ndarray:
        began = time.perf_counter()
        images = photo_like_images(len(prompts), args.size, rng)
        time.sleep(max(0.0, len(prompts) / args.rate - (time.perf_counter() - began)))
        return images

    prompts = [PromptSpec(text="a photo", seed=seed) for seed in range(args.images)]
    model = load_model(ModelSpec(id="tiny"))  # only keys the images; the stand-in draws them
    print(f"a stand-in GPU at {args.rate:g} images/s, {args.size} px, batch {args.batch_size}, "
          f"{args.images} images")
    print("| writes | images/s | share of the stand-in's rate |\n|---|---|---|")
    for way in ("none", "written in line", "written in the background"):
        with tempfile.TemporaryDirectory() as folder:
            cache = None if way == "none" else ImageCache(folder)
            if way == "written in line":
                cache.writing_in_background = lambda cache=cache: written_in_line(cache)
            generator = Generator(model, GenerationSpec(), cache, batch_size=args.batch_size,
                                  progress=False)
            generator.sample = stand_in
            seconds = timed(functools.partial(generator.images, prompts), torch.device("cpu"))
            print(f"| {way} | {args.images / seconds:.3f} | "
                  f"{100 * args.images / seconds / args.rate:.1f}% |", flush=True)
            if way == "written in the background":
                measure_reads(cache, generator.keys(prompts), args.rate)


def measure_reads(cache: ImageCache, keys: list[str], rate: float) -> None:
    print("\n| reads | images/s | share of the time the stand-in draws them in |\n|---|---|---|")
    ways = {"one after another": lambda: [cache.get(key) for key in keys],
            "on the cache's threads": lambda: CachedImages(cache, keys)[:]}
    for way, read in ways.items():
        seconds = timed(read, torch.device("cpu"))
        print(f"| {way} | {len(keys) / seconds:.1f} | "
              f"{100 * seconds / (len(keys) / rate):.1f}% |", flush=True)


if __name__ == "__main__":
    main()
