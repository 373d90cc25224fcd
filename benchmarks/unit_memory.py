"""How much host memory a unit's images take from drawing to scoring; any machine, one run.

    python benchmarks/unit_memory.py                  # 512 images of 512 px
    python benchmarks/unit_memory.py --images 2000 --rate 32

A unit of a full reproduction has thousands of 512 px images (COCO-30k: 30,000, 23 GB
decoded, and FID to the original model reads as many again). The generator draws
``--images`` images with a stand-in sampler (``image_cache.py``'s: a GPU at ``--rate``
images/s) into a fresh image cache, then a stand-in scorer goes through them twice, a batch
of ``--score-batch`` at a time, as a task's FID and CLIP scorers do. Two ways, each in a
process of its own so that each peak is its own:

- held: the images kept in memory from drawing to scoring (a list, as the generator
  returned them before);
- read when used: the generator's ``CachedImages``, each batch read from the cache as the
  scorer takes it, without and with the next batch read ahead while the scorer works on
  this one (now; the stand-in scorer waits ``--scorer-ms`` per image, as for a GPU).

Printed for each: how far the process's peak resident memory rose above what it was before
drawing (MB, and per image), and the seconds the two scoring passes took; then what reading
from the cache costs per image, as a share of the time an H100 takes to draw the image.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from image_cache import photo_like_images

# Images/s of the best H100 run at 50 steps (benchmarks/README.md), to size the reads against.
H100_RATE = 4.24
WAYS = {"held": "held in memory (as before)",
        "read": "read from the cache when used, no read-ahead",
        "ahead": "read from the cache when used, the next batch read ahead (now)"}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def measure(way: str, args: argparse.Namespace) -> dict[str, float]:
    """Draws and scores in this process; the rise of its peak RSS and the scoring time."""
    from erasebench import image_sequences
    from erasebench.cache import ImageCache
    from erasebench.generate import Generator
    from erasebench.models import load_model
    from erasebench.specs import GenerationSpec, ModelSpec, PromptSpec

    rng = np.random.default_rng(0)
    image_sequences.READ_AHEAD = way == "ahead"

    def stand_in(prompts, conditioning=None) -> np.ndarray:
        began = time.perf_counter()
        images = photo_like_images(len(prompts), args.size, rng)
        time.sleep(max(0.0, len(prompts) / args.rate - (time.perf_counter() - began)))
        return images

    model = load_model(ModelSpec(id="tiny"))  # only keys the images; the stand-in draws them
    prompts = [PromptSpec(text="a photo", seed=seed) for seed in range(args.images)]
    with tempfile.TemporaryDirectory() as folder:
        generator = Generator(model, GenerationSpec(), ImageCache(folder),
                              batch_size=args.batch_size, progress=False)
        generator.sample = stand_in
        before = peak_rss_mb()
        images = generator.images(prompts)
        if way == "held":
            images = list(images)
        began = time.perf_counter()
        for _ in range(2):  # FID and CLIP: two passes, a batch at a time
            for start in range(0, len(images), args.score_batch):
                batch = np.stack([np.asarray(i) for i in images[start:start + args.score_batch]])
                float(batch.astype(np.float32).mean())
                time.sleep(len(batch) * args.scorer_ms / 1000)  # the scorer's GPU time
        scoring = time.perf_counter() - began
        return {"rise_mb": peak_rss_mb() - before, "scoring_s": scoring}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--rate", type=float, default=16.0,
                        help="images/s of the stand-in GPU (writes keep pace on 2 cores)")
    parser.add_argument("--batch-size", type=int, default=16, help="generation batch")
    parser.add_argument("--score-batch", type=int, default=50, help="scoring batch (FID's)")
    parser.add_argument("--scorer-ms", type=float, default=4.0,
                        help="ms a stand-in scorer waits per image, as for a GPU (ResNet-50 "
                        "took 3.9 on the H100, preprocessing included)")
    parser.add_argument("--way", choices=sorted(WAYS), help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.way:
        print(json.dumps(measure(args.way, args)))
        return

    decoded_mb = args.images * args.size * args.size * 3 / 2**20
    print(f"{args.images} images of {args.size} px ({decoded_mb:.0f} MB decoded), a stand-in "
          f"GPU at {args.rate:g} images/s, batch {args.batch_size}, scored twice in batches "
          f"of {args.score_batch}")
    print("| images | peak memory rise (MB) | per image (MB) | scoring, two passes (s) |\n"
          "|---|---|---|---|")
    results = {}
    for way, label in WAYS.items():
        child = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--way", way],
                               capture_output=True, text=True, check=False)
        if child.returncode != 0:
            print(f"| {label} | failed: {child.stderr.strip().splitlines()[-1:]} | | |")
            continue
        results[way] = result = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"| {label} | {result['rise_mb']:.0f} | {result['rise_mb'] / args.images:.3f} | "
              f"{result['scoring_s']:.2f} |", flush=True)
    if "held" in results:
        held = results["held"]
        for way, result in results.items():
            if way == "held":
                continue
            per_image = (result["scoring_s"] - held["scoring_s"]) / (2 * args.images)
            print(f"\n{WAYS[way]}: {held['rise_mb'] / max(result['rise_mb'], 1):.1f}x less "
                  f"memory than held; reading costs {1000 * per_image:.1f} ms per image and "
                  f"pass, {100 * 2 * per_image * H100_RATE:.1f}% of the time an H100 at "
                  f"{H100_RATE} images/s takes to draw them, for two passes")

if __name__ == "__main__":
    main()
