"""How many rows should each network's calls take on a CPU? Measured in one run.

    python benchmarks/cpu_call_rows.py                       # the miniature world, one thread
    python benchmarks/cpu_call_rows.py --threads 2 --rows 8,16,32,64,128

On a CPU the generator runs every call of a network on one fixed number of rows
(``erasebench.generate.cpu_call_rows``: a batch's rows in chunks, the last padded with
copies), because oneDNN's kernels, and so an image's last bits, change with a call's rows.
This script prints:

1. each network's time per row (text encoder, UNet, VAE decode) in calls of each of
   ``--rows`` (the best of ``--repeats``): the fastest row count is the one to fix;
2. the generator drawing ``--images`` images in batches of ``--batch-size`` with the
   miniature world's sampling settings, with each call taking the whole batch (as before
   the rows were fixed) and with the fixed rows: images/s (the best of ``--repeats``, the
   two taking turns so that a busy machine slows both alike), their ratio, and how many
   8-bit values of the first ``--compare`` images change when drawn in batches of 3
   instead (0 with fixed rows, by construction).

Run it on the machine that will run the miniature world (``erasebench run``): its CPU
decides. A run's CPU workers use one thread each, the default here.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from measure import timed

from erasebench import generate
from erasebench.generate import Generator
from erasebench.models import DiffusionModel, load_model
from erasebench.specs import ModelSpec, PromptSpec
from erasebench.tasks.shapes.scoring import SHAPES_GENERATION


def best_seconds(function: Callable[[], object], repeats: int) -> float:
    function()  # oneDNN builds its kernels for a new shape on the first call
    return min(timed(function, torch.device("cpu")) for _ in range(repeats))


@torch.no_grad()
def per_row_ms(model: DiffusionModel, rows: int, repeats: int) -> dict[str, float]:
    """Milliseconds per row of one call of each network on ``rows`` rows."""
    config = model.unet.config
    ids = model.token_ids(["a red circle"] * rows)
    context = model.text_encoder(ids)[0]
    latents = torch.randn(rows, config.in_channels, config.sample_size, config.sample_size)
    calls = {
        "text_encoder": lambda: model.text_encoder(ids),
        "unet": lambda: model.unet(latents, torch.tensor(500), encoder_hidden_states=context),
        "vae": lambda: model.vae.decode(latents),
    }
    return {name: 1000 * best_seconds(call, repeats) / rows for name, call in calls.items()}


def whole_batch_call(function, *batched, rows, **fixed):  # noqa: ANN001, ANN202, ARG001
    return function(*batched, **fixed)


@contextlib.contextmanager
def whole_batch_calls(on: bool) -> Iterator[None]:
    """Within the block, with ``on``, every network call takes the whole batch."""
    saved = generate.call_in_chunks
    if on:
        generate.call_in_chunks = whole_batch_call
    try:
        yield
    finally:
        generate.call_in_chunks = saved


def drawn(model: DiffusionModel, prompts: list[PromptSpec], batch_size: int) -> np.ndarray:
    images = Generator(model, SHAPES_GENERATION, batch_size=batch_size,
                       progress=False).images(prompts)
    return np.stack([np.asarray(image) for image in images])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shapes")
    parser.add_argument("--rows", default="8,16,32,64,128",
                        help="row counts to time each network at, comma-separated")
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", type=int, default=24,
                        help="images drawn again in batches of 3")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(ModelSpec(id=args.model), device="cpu")
    fixed = {name: generate.cpu_call_rows(model, name) for name in ("text_encoder", "unet",
                                                                       "vae")}
    print(f"{args.model}, {torch.get_num_threads()} thread(s), best of {args.repeats}\n")
    print("| rows per call | text encoder (ms per row) | UNet | VAE decode |")
    print("|---|---|---|---|")
    for rows in (int(rows) for rows in args.rows.split(",")):
        times = per_row_ms(model, rows, args.repeats)
        cells = [f"{ms:.2f}" + (" (fixed)" if fixed[name] == rows else "")
                 for name, ms in times.items()]
        print(f"| {rows} | {' | '.join(cells)} |", flush=True)

    texts = [f"a {colour} {shape}" for shape in ("circle", "square", "triangle", "star")
             for colour in ("red", "green", "blue", "yellow")]
    prompts = [PromptSpec(text=texts[seed % len(texts)], seed=seed)
               for seed in range(args.images)]
    best = {True: float("inf"), False: float("inf")}
    first: dict[bool, np.ndarray] = {}
    for _ in range(args.repeats):
        for whole in (True, False):
            with whole_batch_calls(whole):
                start = time.perf_counter()
                first[whole] = drawn(model, prompts, args.batch_size)[: args.compare]
                best[whole] = min(best[whole], time.perf_counter() - start)
    print(f"\n{args.images} images in batches of {args.batch_size} "
          f"({SHAPES_GENERATION.scheduler}, {SHAPES_GENERATION.steps} steps)\n")
    print(f"| network calls | images/s | vs whole batch | values changed by batches of 3 "
          f"(of {first[True].size:,}) |")
    print("|---|---|---|---|")
    for whole in (True, False):
        with whole_batch_calls(whole):
            changed = int((drawn(model, prompts[: args.compare], 3) != first[whole]).sum())
        name = "whole batch" if whole else "fixed rows ({text_encoder}, {unet}, {vae})".format(
            **fixed)
        print(f"| {name} | {args.images / best[whole]:.1f} | "
              f"{best[True] / best[whole]:.2f}x | {changed} |", flush=True)


if __name__ == "__main__":
    main()
