"""Seconds per training step and peak memory of every in-tree eraser.

    python benchmarks/erasers.py                          # SD v1.4 architecture, random weights
    python benchmarks/erasers.py --model tiny --device cpu --erasers esd_x,uce

The full-size model is built from SD v1.4's config with random weights (same FLOPs and
memory as the real one; ``--model sd-v1-random``). Each training eraser runs twice, with
``--short`` and ``--long`` steps and its image-drawing parts cut to the minimum; the
difference divided by the difference in steps is the cost of one step, free of the
fixed costs (frozen copies, anchor images); "at the paper's steps" projects a full
training run from the two (fixed + default steps x per step). An untimed one-step run of
each eraser comes first: on a GPU, the first call of each kernel (lazy module loading,
cuBLAS/cuDNN plan selection, the allocator growing) took seconds, which the first timed run
absorbed — enough to make the difference of the two runs negative. Closed-form erasers report
one solve, and UCE also one of Imagenette's 10 classes at once (issue 8: under 5 s).
Peak memory is CUDA's max allocated on a GPU and the process's peak RSS on CPU.
"""

from __future__ import annotations

import torch
from measure import checked_arguments, model_parser, peak_memory_gb, timed

from erasebench.hardware import describe_device
from erasebench.models import load_model
from erasebench.registry import ERASERS
from erasebench.specs import ErasureRequest, ModelSpec
from erasebench.tasks.imagenette import CLASSES

# The config key that counts an eraser's training steps, and what makes its fixed part small.
STEP_KEYS = {"esd_x": "iterations", "esd_u": "iterations", "ca": "steps", "mace": "lora_steps",
             "ap": "iterations", "age": "iterations", "all_but_one": "iterations"}
SMALL_EXTRAS = {"ca": {"anchor_images": 2, "anchor_steps": 2},
                "mace": {"images_per_concept": 2, "image_steps": 2}}


def timed_erase(name: str, model, config: dict, request: ErasureRequest) -> float:
    eraser = ERASERS.get(name)(config)
    return timed(lambda: eraser.erase(model, request), model.device)


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--erasers", default=",".join(["uce", *STEP_KEYS]))
    parser.add_argument("--short", type=int, default=2)
    parser.add_argument("--long", type=int, default=6)
    args = checked_arguments(parser, ("erasers",))
    device = torch.device(args.device)
    model = load_model(ModelSpec(id=args.model), device=device)
    request = ErasureRequest(concepts=("church",))
    print(f"model {args.model} on {describe_device(str(device))}")
    print("| eraser | seconds per step | fixed seconds | at the paper's steps (minutes) | "
          "peak memory (GB) |")
    print("|---|---|---|---|---|")
    for name in args.erasers.split(","):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        key = STEP_KEYS.get(name)
        extras = SMALL_EXTRAS.get(name, {})
        warm_up = {key: 1} if key else {}
        timed_erase(name, model, {**warm_up, **extras}, request)
        if key is None:
            total = timed_erase(name, model, extras, request)
            print(f"| {name} | (closed form) | {total:.2f} | - | {peak_memory_gb(device):.2f} |")
            if name == "uce":
                ten = timed_erase(name, model, extras, ErasureRequest(concepts=CLASSES))
                print(f"| uce, {len(CLASSES)} concepts | (closed form) | {ten:.2f} | - | "
                      f"{peak_memory_gb(device):.2f} |", flush=True)
            continue
        short = timed_erase(name, model, {key: args.short, **extras}, request)
        long = timed_erase(name, model, {key: args.long, **extras}, request)
        per_step = (long - short) / (args.long - args.short)
        fixed = short - args.short * per_step
        paper_steps = ERASERS.get(name).Config().model_dump()[key]
        full = (fixed + paper_steps * per_step) / 60
        print(f"| {name} | {per_step:.3f} | {fixed:.2f} | {full:.1f} ({paper_steps} steps) | "
              f"{peak_memory_gb(device):.2f} |", flush=True)


if __name__ == "__main__":
    main()
