"""How well the miniature world's model draws: the classifier's per-shape and per-colour
accuracy on images of "a {colour} {shape}" for every pair, as markdown.

    python -m erasebench.tasks.shapes.quality                 # 7 images per pair: 560
    python -m erasebench.tasks.shapes.quality --model path/to/folder --repeats 10

Uses the tasks' sampler (DPM-Solver, 8 steps, guidance 4) unless told otherwise; seeds
start at ``--seed`` (default 500000, never used by training or the tasks).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from erasebench.generate import Generator
from erasebench.models import load_model
from erasebench.specs import GenerationSpec, ModelSpec, PromptSpec
from erasebench.tasks.shapes.render import COLOURS, SHAPES, caption
from erasebench.tasks.shapes.scoring import SHAPES_GENERATION, read_images


def pair_prompts(repeats: int, seed: int) -> list[PromptSpec]:
    """``repeats`` prompts of every (shape, colour), labelled "shape/colour"."""
    return [PromptSpec(text=caption(shape, colour, "plain"), label=f"{shape}/{colour}",
                       seed=seed + 1000 * r + 10 * s + c)
            for r in range(repeats) for s, shape in enumerate(SHAPES)
            for c, colour in enumerate(COLOURS)]


def quality_table(model_id: str = "shapes", repeats: int = 7, seed: int = 500_000,
                  settings: GenerationSpec = SHAPES_GENERATION) -> str:
    model = load_model(ModelSpec(id=model_id))
    prompts = pair_prompts(repeats, seed)
    images = Generator(model, settings, batch_size=128,
                       progress=sys.stderr.isatty()).images(prompts)
    logits = read_images(images)
    wanted = [p.label.split("/") for p in prompts]
    shape_ok = np.array([SHAPES[int(i)] == w[0]
                         for i, w in zip(logits["shape"].argmax(1), wanted, strict=True)])
    colours = list(COLOURS)
    colour_ok = np.array([colours[int(i)] == w[1]
                          for i, w in zip(logits["colour"].argmax(1), wanted, strict=True)])
    shapes = np.array([w[0] for w in wanted])
    named_colours = np.array([w[1] for w in wanted])
    lines = [f"{len(prompts)} images, {settings.scheduler} {settings.steps} steps, guidance "
             f"{settings.guidance:g}: shape {100 * shape_ok.mean():.1f}%, colour "
             f"{100 * colour_ok.mean():.1f}%", "", "| shape | shape acc. | colour acc. |",
             "|---|---|---|"]
    for shape in SHAPES:
        mine = shapes == shape
        lines.append(f"| {shape} | {100 * shape_ok[mine].mean():.1f}% | "
                     f"{100 * colour_ok[mine].mean():.1f}% |")
    lines += ["", "| colour | shape acc. | colour acc. |", "|---|---|---|"]
    for colour in colours:
        mine = named_colours == colour
        lines.append(f"| {colour} | {100 * shape_ok[mine].mean():.1f}% | "
                     f"{100 * colour_ok[mine].mean():.1f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shapes", help="'shapes' or a diffusers folder")
    parser.add_argument("--repeats", type=int, default=7, help="images per (shape, colour)")
    parser.add_argument("--seed", type=int, default=500_000)
    parser.add_argument("--steps", type=int, default=SHAPES_GENERATION.steps)
    parser.add_argument("--scheduler", default=SHAPES_GENERATION.scheduler)
    parser.add_argument("--guidance", type=float, default=SHAPES_GENERATION.guidance)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = GenerationSpec(scheduler=args.scheduler, steps=args.steps,
                              guidance=args.guidance)
    print(quality_table(args.model, args.repeats, args.seed, settings))


if __name__ == "__main__":
    main()
