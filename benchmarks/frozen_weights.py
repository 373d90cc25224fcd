"""What the erasers gain by holding their frozen layer weights in autocast's precision while
they train (``erasebench.training_precision.frozen_weights_cast``) instead of letting
autocast cast them at every UNet call, as before; both ways in one run.

    python benchmarks/frozen_weights.py                      # SD v1.4 architecture, a GPU
    python benchmarks/frozen_weights.py --device cpu --erasers ""          # counts only
    python benchmarks/frozen_weights.py --model tiny --device cpu          # and training

Autocast keeps the cast of a weight only while that weight requires a gradient; an eraser
trains a few of the UNet's weights (ESD-x, AP, AGE and CA its cross-attention), so every
UNet call of a training step casts the others again: ESD draws each x_t with up to 50 such
calls. For each eraser's trained set the script prints, per UNet call:

- the frozen layer weights (tensors, and the GB the casts read and write),
- the operations torch dispatches, and how many of them are casts, each way (the same on
  any device and at any latent size: counted at ``--count-size``),
- the milliseconds of a no-grad call of batch 2 at the model's own size (``--time-size``),
  as x_t's draws make them, each way, best of ``--calls``, and the outputs' largest
  difference (0: the values autocast would cast to are the ones held);

and then, for ``--erasers``, the seconds per training step each way (two runs of
``--short`` and ``--long`` steps, as ``erasers.py``) and whether both ways made the same
edit. On a CPU the erasers train in fp32 without autocast: the script turns bf16 autocast
on there, as the tests do, to count and compare; its times are not a GPU's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from measure import checked_arguments, model_parser, peak_memory_gb, timed
from torch.utils._python_dispatch import TorchDispatchMode

from erasebench import training_precision
from erasebench.baselines import common
from erasebench.hardware import describe_device
from erasebench.models import DiffusionModel, load_model
from erasebench.registry import ERASERS
from erasebench.specs import ErasureRequest, ModelSpec

PRECISION = "auto"  # the erasers' default: bf16 autocast on a GPU
STEP_KEYS = {"esd_x": "iterations", "esd_u": "iterations", "ap": "iterations",
             "age": "iterations", "all_but_one": "iterations", "ca": "steps"}


class DispatchCount(TorchDispatchMode):
    """The operations torch dispatches within the block, and how many are dtype casts."""

    def __init__(self) -> None:
        super().__init__()
        self.operations = self.casts = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.operations += 1
        self.casts += func is torch.ops.aten._to_copy.default
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def frozen_weights(held: bool, model: DiffusionModel) -> Iterator[None]:
    """The frozen weights held cast (now), or left to autocast (before)."""
    cast = training_precision.frozen_weights_cast
    with cast(model, PRECISION) if held else contextlib.nullcontext():
        yield


def unet_call(model: DiffusionModel, size: int):
    generator = torch.Generator().manual_seed(0)
    channels = int(model.unet.config.in_channels)
    latents = torch.randn(2, channels, size, size, generator=generator).to(model.device)
    context = torch.randn(2, 77, int(model.unet.config.cross_attention_dim),
                          generator=generator).to(model.device)
    timestep = torch.tensor(500, device=model.device)
    return lambda: model.unet(latents, timestep, encoder_hidden_states=context).sample


def per_call(model: DiffusionModel, name: str, count_size: int, time_size: int,
             calls: int) -> None:
    # Only the eraser's parameters require a gradient, as in its training (nothing changes)
    trained = ERASERS.get(name)().editable_parameters(model)
    with common.editing(model, trained, name, {}, ErasureRequest(concepts=("church",))), \
            torch.no_grad():
        frozen = training_precision.frozen_layer_weights(model.unet)
        elements = sum(weight.numel() for weight in frozen)
        read, written = elements * 4 / 1e9, elements * 2 / 1e9  # fp32 in, half out
        counts, best, outputs = {}, {}, {}
        for held in (False, True):
            # Within one autocast block, as a training step's calls: the trained weights'
            # casts are kept from its first call on.
            with frozen_weights(held, model), training_precision.autocast(model.device, PRECISION):
                unet_call(model, count_size)()
                with DispatchCount() as count:
                    unet_call(model, count_size)()
                counts[held] = count
                call = unet_call(model, time_size)
                for _ in range(2):  # first calls of each kernel
                    call()
                best[held] = min(timed(call, model.device) for _ in range(calls)) * 1000
                outputs[held] = call().float()
    difference = float((outputs[True] - outputs[False]).abs().max())
    print(f"| {name} | {len(frozen)} ({read:.2f} GB read, {written:.2f} written) | "
          f"{counts[False].operations} ({counts[False].casts} casts) | "
          f"{counts[True].operations} ({counts[True].casts} casts) | {best[False]:.2f} | "
          f"{best[True]:.2f} | {best[False] / best[True]:.2f}x | {difference:g} |", flush=True)


def per_step(model: DiffusionModel, name: str, short: int, long: int) -> None:
    key = STEP_KEYS[name]
    extras = {"anchor_images": 2, "anchor_steps": 2} if name == "ca" else {}
    request = ErasureRequest(concepts=("church",))

    def erase(steps: int, held: bool):
        selected = training_precision.frozen_layer_weights
        if not held:  # as before: nothing held cast, autocast casts them at every call
            training_precision.frozen_layer_weights = lambda module: []
        try:
            eraser = ERASERS.get(name)({key: steps, **extras})
            edits = []
            seconds = timed(lambda: edits.append(eraser.erase(model, request)), model.device)
            return seconds, edits[0]
        finally:
            training_precision.frozen_layer_weights = selected

    erase(1, True)  # first calls of each kernel
    seconds, edits = {}, {}
    for held in (False, True):
        if model.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(model.device)
        first, _ = erase(short, held)
        last, edits[held] = erase(long, held)
        seconds[held] = ((last - first) / (long - short), peak_memory_gb(model.device))
    same = edits[True].weights.keys() == edits[False].weights.keys() and all(
        torch.equal(edits[True].weights[key], edits[False].weights[key])
        for key in edits[True].weights)
    (before, memory_before), (now, memory_now) = seconds[False], seconds[True]
    print(f"| {name} | {before:.3f} | {now:.3f} | {before / now:.2f}x | {memory_before:.2f} | "
          f"{memory_now:.2f} | {'yes' if same else 'no'} |", flush=True)


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--sets", default="esd_x,esd_u,ca",
                        help="erasers whose trained parameters set the frozen ones")
    parser.add_argument("--erasers", default="esd_x,ap",
                        help="erasers timed per training step (empty: none)")
    parser.add_argument("--count-size", type=int, default=8, help="latent size counted at")
    parser.add_argument("--time-size", type=int,
                        help="latent size timed at (default: the model's own on a GPU, "
                        "--count-size on a CPU)")
    parser.add_argument("--calls", type=int, default=10,
                        help="timed UNet calls each way (the best is printed)")
    parser.add_argument("--short", type=int, default=1, help="steps of the shorter erasure")
    parser.add_argument("--long", type=int, default=3, help="steps of the longer erasure")
    args = checked_arguments(parser, ("sets", "erasers"))
    device = torch.device(args.device)
    if device.type != "cuda":  # the erasers' fp32 on a CPU; bf16 autocast to compare
        training_precision.autocast_dtype = lambda device, precision: torch.bfloat16
    model = load_model(ModelSpec(id=args.model), device=device)
    print(f"model {args.model} on {describe_device(str(device))}, "
          f"{training_precision.autocast_dtype(device, PRECISION)} autocast")
    print("| trained set of | frozen layer weights | operations per call, before | now | "
          "ms per call, before | now | speed-up | largest difference |")
    print("|---|---|---|---|---|---|---|---|")
    time_size = args.time_size or (int(model.unet.config.sample_size) if device.type == "cuda"
                                   else args.count_size)
    for name in filter(None, args.sets.split(",")):
        per_call(model, name, args.count_size, time_size, args.calls)
    erasers = list(filter(None, args.erasers.split(",")))
    if erasers:
        print("\n| eraser | seconds per step, before | now | speed-up | peak memory (GB), "
              "before | now | same edit |")
        print("|---|---|---|---|---|---|---|")
    for name in erasers:
        per_step(model, name, args.short, args.long)


if __name__ == "__main__":
    main()
