"""Where one guided UNet call of the generator spends its time, by kind of work, and how close
each kind comes to the chip's peak: so that the next optimisation goes where the time is.

    python benchmarks/unet_profile.py                  # SD v1.4 architecture, GPU, batch 64
    python benchmarks/unet_profile.py --model tiny --device cpu --batch 2 --modes eager

The UNet is called as the generator calls it: ``2 x --batch`` rows (both halves of the
guidance batch), weights cast to ``--precision``, under each of ``--modes``: ``eager`` and
``compiled`` (the generator's ``compile=True`` UNet, its inductor options as they stand),
each warmed up and then profiled over ``--calls`` calls with ``torch.profiler``;
``--cudnn-attention`` puts cuDNN's fused attention first, as generation.py's variant does.

Per mode, a table of the GPU kernels' time (on a CPU: the aten operators' own time) by
kind: convolution, matrix product, attention, normalisation and other reductions, and
elementwise and copies, each with its FLOPs per call (counted by
``torch.utils.flop_counter`` on one eager call: convolutions, matrix products and attention
only) and the TFLOP/s it reached; then the kernels' total
against the wall time of a call (the difference is time the GPU waited for the CPU), and
the ``--top`` kernels by time. A kernel's kind is read off its name (:func:`kind_of`), so
an unfamiliar name lands in ``other``: the top list shows it.
"""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from collections.abc import Callable

import torch
from measure import checked_arguments, cudnn_attention_first, model_parser, timed
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from erasebench import generate
from erasebench.hardware import describe_device
from erasebench.models import load_model
from erasebench.specs import ModelSpec

# Kinds of work by the names of their kernels (cuDNN, cuBLAS, CUTLASS, FlashAttention,
# Triton from inductor, PyTorch's own) and aten operators; the first match wins.
KINDS: list[tuple[str, re.Pattern[str]]] = [
    ("attention", re.compile(r"flash|fmha|attention|sdpa|scaled_dot_product|softmax", re.I)),
    ("convolution", re.compile(r"conv|fprop|dgrad|wgrad|implicit_gemm|winograd|nhwckrsc",
                               re.I)),
    ("matrix product", re.compile(r"gemm|cublas|cutlass|matmul|aten::(mm|addmm|bmm|baddbmm|"
                                  r"linear)\b|_mm_|nvjet|sm\d+_xmma", re.I)),
    ("normalisation and reductions", re.compile(r"norm|moments|welford|reduce",
                                                re.I)),
    ("elementwise and copies", re.compile(r"elementwise|vectorized|unrolled|copy|"
                                          r"memcpy|memset|aten::(add|mul|cat|silu|gelu|to)",
                                          re.I)),
]
OTHER = "other"
# Inductor's own kernels are named after the operators fused into them (the GroupNorm after
# a convolution: triton_red_fused_convolution_native_group_norm_12), so their prefix says
# what they do; its templates (triton_tem_: a matrix product, a convolution) go by name.
INDUCTOR_KINDS = {"triton_red_": "normalisation and reductions",
                  "triton_per_": "normalisation and reductions",
                  "triton_poi_": "elementwise and copies"}


def kind_of(name: str) -> str:
    for prefix, kind in INDUCTOR_KINDS.items():
        if name.startswith(prefix):
            return kind
    return next((kind for kind, pattern in KINDS if pattern.search(name)), OTHER)


def cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """The CPU's fused attention counted as the GPU's is (torch's counter knows only the
    GPU kernels), so that a CPU run counts the whole UNet."""
    return sdpa_flop_count(query, key, value)


def flops_by_kind(call: Callable[[], object]) -> dict[str, float]:
    """FLOPs of one ``call()`` by kind, from torch's FLOP counter (the operators it knows)."""
    cpu_attention = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    with FlopCounterMode(display=False, custom_mapping={cpu_attention: cpu_attention_flops}) \
            as counter:
        call()
    totals: dict[str, float] = defaultdict(float)
    for operator, flops in counter.get_flop_counts().get("Global", {}).items():
        totals[kind_of(f"aten::{getattr(operator, '__name__', operator)}")] += flops
    return totals


def kernel_times(call: Callable[[], object], calls: int,
                 device: torch.device) -> dict[str, float]:
    """Seconds of each GPU kernel (on a CPU, each aten operator's own time) per ``call()``."""
    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as profiler:
        for _ in range(calls):
            call()
        if on_gpu:
            torch.cuda.synchronize(device)
    times: dict[str, float] = defaultdict(float)
    for event in profiler.key_averages():
        if on_gpu:
            seconds = event.self_device_time_total / 1e6 if event.device_type.name == "CUDA" \
                else 0.0
        else:
            seconds = event.self_cpu_time_total / 1e6 if event.key.startswith("aten::") else 0.0
        if seconds > 0:
            times[event.key] += seconds / calls
    return times


def report(mode: str, times: dict[str, float], flops: dict[str, float], wall: float,
           top: int, on_gpu: bool) -> None:
    total = sum(times.values())
    by_kind: dict[str, float] = defaultdict(float)
    for name, seconds in times.items():
        by_kind[kind_of(name)] += seconds
    # a CPU's operators are timed with the profiler's overhead in them, the wall time without
    busy = f"{100 * total / wall:.0f}% of the wall time" if on_gpu else "profiled"
    print(f"\n{mode}: one guided UNet call, {1000 * wall:.1f} ms wall, "
          f"{1000 * total:.1f} ms in {'kernels' if on_gpu else 'operators'} ({busy})")
    print("| kind | ms per call | share of kernel time | TFLOP per call | TFLOP/s |\n"
          "|---|---|---|---|---|")
    for kind in [k for k, _ in KINDS] + [OTHER]:
        seconds, work = by_kind.get(kind, 0.0), flops.get(kind, 0.0)
        rate = f"{work / seconds / 1e12:.4g}" if work and seconds else "-"
        print(f"| {kind} | {1000 * seconds:.2f} | {100 * seconds / total:.1f}% | "
              f"{work / 1e12:.4g} | {rate} |")
    all_flops = sum(flops.values())
    print(f"| all | {1000 * total:.2f} | 100% | {all_flops / 1e12:.4g} | "
          f"{all_flops / total / 1e12:.4g} |")
    print(f"\n| {mode}: kernel | kind | ms per call | share |\n|---|---|---|---|")
    for name, seconds in sorted(times.items(), key=lambda item: -item[1])[:top]:
        short = name if len(name) <= 90 else name[:87] + "..."
        print(f"| `{short.replace('|', '/')}` | {kind_of(name)} | {1000 * seconds:.2f} | "
              f"{100 * seconds / total:.1f}% |")


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--batch", type=int, default=64,
                        help="images per batch: the UNet sees twice as many rows")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--modes", default="eager,compiled",
                        help="comma-separated: eager, compiled")
    parser.add_argument("--calls", type=int, default=3, help="profiled calls per mode")
    parser.add_argument("--top", type=int, default=15, help="kernels listed per mode")
    parser.add_argument("--cudnn-attention", action="store_true",
                        help="attention tries cuDNN's fused kernels first (generation.py's "
                             "cudnn_attention variant)")
    args = checked_arguments(parser)
    modes = [mode for mode in args.modes.split(",") if mode]
    if not modes or set(modes) - {"eager", "compiled"}:
        raise SystemExit(f"--modes {args.modes!r}: a comma-separated list of eager, compiled")
    device = torch.device(args.device)
    model = load_model(ModelSpec(id=args.model), device=device)
    dtype = generate.resolve_precision(args.precision, device)
    unet = model.unet
    side = model.native_size // model.vae_scale
    rows = 2 * args.batch
    latents = torch.randn(rows, unet.config.in_channels, side, side, device=device, dtype=dtype)
    context = torch.randn(rows, model.tokenizer.model_max_length,
                          unet.config.cross_attention_dim, device=device, dtype=dtype)
    timestep = torch.tensor(500, device=device)
    print(f"model {args.model} on {describe_device(str(device))}, UNet rows {rows} "
          f"({args.batch} images guided), {dtype}, torch {torch.__version__}")

    attention = cudnn_attention_first() if args.cudnn_attention else contextlib.nullcontext()
    with torch.no_grad(), generate.weights_cast([unet], dtype), attention:
        def call_with(network) -> Callable[[], object]:
            return lambda: network(latents, timestep, encoder_hidden_states=context).sample

        flops = flops_by_kind(call_with(unet))
        # checks the FLOP ceiling that generation.py divides by (the estimate)
        print(f"FLOPs counted: {sum(flops.values()) / args.batch / 1e12:.4g} TFLOP per image "
              "and guided step (generation.py's ceiling assumes 1.61 for SD v1.4 at 512 px)")
        for mode in modes:
            network = generate.compiled_or_explained(model.compiled_unet(
                generate.COMPILE_BACKEND, generate.COMPILE_OPTIONS)) if mode == "compiled" \
                else unet
            call = call_with(network)
            call()  # warm-up: compilation, kernels loaded, plans chosen
            call()
            wall = timed(call, device)
            report(mode, kernel_times(call, args.calls, device), flops, wall, args.top,
                   device.type == "cuda")


if __name__ == "__main__":
    main()
