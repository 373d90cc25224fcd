"""What the robustness task's recovery attack costs per Adam step, in fp32 as before and in
the precision the erasers train in, as now (``AttackSettings.precision``: bf16 autocast,
the frozen weights held cast); both ways in one run.

    python benchmarks/recovery_attack.py                          # SD v1.4 architecture, a GPU
    python benchmarks/recovery_attack.py --model tiny --device cpu

A step is one forward and backward pass of ``--samples`` noisy latents through the UNet,
the gradient going to the conditioning only. For each way the script prints the seconds
per step (from two attacks of ``--short`` and ``--long`` steps, so that the fixed part,
the latents, the original model's target and the casts, falls out), the fixed seconds,
the samples one UNet pass took (``recover`` splits a step into passes that fit the
memory: 32 samples' backward pass may not fit a GPU, least of all in fp32), the peak
memory, the loss after the long attack, and the task's default attack projected from the
step: 50 steps for each erased class and radius, 10 classes (the first two splits) and 3
radii per eraser. The passes are fitted in the warm-up, so the timed attacks start from
what fits, as all but a unit's first attack do. On a CPU the attack runs in fp32
whatever its precision; the script turns bf16 autocast on there, as the tests do, to
compare; its times are not a GPU's.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from measure import checked_arguments, model_parser, peak_memory_gb, timed
from PIL import Image

from erasebench import training_precision
from erasebench.edits import EditedModel
from erasebench.generate import Generator
from erasebench.hardware import describe_device
from erasebench.models import DiffusionModel, load_model
from erasebench.probe import ModelProbe
from erasebench.specs import ErasureRequest, GenerationSpec, ModelSpec
from erasebench.tasks.robustness.recovery import AttackSettings, FittedPasses, recover

# The robustness task's defaults on imagenette: steps per class and radius, the classes
# its two default splits erase, its radii.
TASK_STEPS, TASK_CLASSES, TASK_RADII = 50, 10, 3


def nudged_attention(model: DiffusionModel, request: ErasureRequest) -> EditedModel:
    """An edit like an eraser's: the cross-attention keys moved 10% (seeded), so that the
    edited model's predictions differ from the original's and the attack has a loss."""
    generator = torch.Generator().manual_seed(0)
    weights = {name: value.detach().cpu() * (1 + 0.1 * torch.randn(
                   value.shape, generator=generator))
               for name, value in model.named_parameters() if ".attn2.to_k." in name}
    return EditedModel("nudge", {}, request, model.fingerprint, weights)


def measure(probe: ModelProbe, texts: list[str], references: list[Image.Image],
            precision: str, args: argparse.Namespace
            ) -> tuple[float, float, int, float, float]:
    """Seconds per step and fixed, samples per UNet pass, peak GB and the last loss of the
    attack in ``precision``."""
    device = probe.model.device
    passes = FittedPasses()

    def attack(steps: int) -> list[float]:
        settings = AttackSettings(steps=steps, samples=args.samples, precision=precision)
        return recover(probe, texts, references, 0.2, settings, passes)[1]

    attack(args.short)  # warm-up: kernels chosen, memory pools filled, passes fitted
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    short = timed(lambda: attack(args.short), device)
    losses: list[float] = []
    long = timed(lambda: losses.extend(attack(args.long)), device)
    step = max(long - short, 0.0) / (args.long - args.short)
    return (step, max(short - args.short * step, 0.0), passes.samples or args.samples,
            peak_memory_gb(device), losses[-1])


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--samples", type=int, default=32,
                        help="noisy latents per step (the task's default)")
    parser.add_argument("--short", type=int, default=1, help="steps of the shorter attack")
    parser.add_argument("--long", type=int, default=4, help="steps of the longer attack")
    parser.add_argument("--prompts", type=int, default=8,
                        help="prompts of the attacked class, each with its original image")
    args = checked_arguments(parser)
    if args.long <= args.short:
        parser.error(f"--long ({args.long}) must be more steps than --short ({args.short})")
    device = torch.device(args.device)
    if device.type != "cuda":  # the attack's fp32 on a CPU; bf16 autocast to compare
        training_precision.autocast_dtype = lambda device, precision: (
            None if precision == "fp32" else torch.bfloat16)
    model = load_model(ModelSpec(id=args.model), device=device)
    request = ErasureRequest(concepts=("cassette player",))
    probe = ModelProbe(model, nudged_attention(model, request),
                       Generator(model, GenerationSpec(), progress=False))
    size = model.native_size
    noise = np.random.default_rng(0).integers(0, 256, (args.prompts, size, size, 3), np.uint8)
    references = [Image.fromarray(pixels) for pixels in noise]
    texts = [f"a photo of a cassette player, view {i}" for i in range(args.prompts)]
    print(f"model {args.model} on {describe_device(str(device))}; {args.samples} noisy "
          f"latents a step; autocast to {training_precision.autocast_dtype(device, 'auto')}")
    print("| precision | s per step | fixed s | samples per pass | peak GB | loss after the "
          f"long attack | task's attack per eraser ({TASK_STEPS} steps x {TASK_CLASSES} "
          f"classes x {TASK_RADII} radii) |")
    print("|---|---|---|---|---|---|---|")
    per_step = {}
    for precision in ("fp32", "auto"):
        step, fixed, per_pass, peak, loss = measure(probe, texts, references, precision, args)
        per_step[precision] = step
        task = step * TASK_STEPS * TASK_CLASSES * TASK_RADII
        print(f"| {precision} | {step:.3f} | {fixed:.2f} | {per_pass} | {peak:.1f} | "
              f"{loss:.4g} | {task / 60:.1f} min |")
    if per_step["auto"] > 0:
        print(f"speed-up of a step: {per_step['fp32'] / per_step['auto']:.2f}x")


if __name__ == "__main__":
    main()
