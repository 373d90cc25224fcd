"""Generation throughput against the peers' per-image fp32 diffusers loop, and what scoring
the same images costs, measured in one run.

    python benchmarks/generation.py                       # SD v1.4 architecture, GPU
    python benchmarks/generation.py --model tiny --device cpu --images 8 --steps 4

Ours: :class:`erasebench.generate.Generator` (batched, one text encoding per distinct
prompt, UNet and VAE weights cast to ``--precision``, classifier-free guidance in one UNet
call). Peers': ``StableDiffusionPipeline`` called once per image in fp32, as most method
repositories do.
Both draw ``--images`` images at ``--steps`` steps with guidance 7.5 from the same model;
throughput excludes a warm-up batch. The FLOP ceiling uses the issue's estimate for SD v1.4
at 512 px (1.61 TFLOP per guided step, ~83 TFLOP per 50-step image with the VAE decode) and
``--peak-tflops`` (790: a bf16 matrix product on an H100). Scorers (ResNet-50, CLIP
ViT-B/32, NudeNet) are timed on the images just made, with random weights written to a
temporary TORCH_HOME so nothing is downloaded.

The image cache row draws ``--images`` more with the generator writing each image to a
temporary image cache, as ``erasebench run`` does (the PNGs are written on background
threads while the next batch is sampled), as a share of ours without the cache; the scorers
then read those images from the cache, as a run's scorers do (in memory with
``--no-cache``). The VAE decode rows time the decode of one batch of ours' size alone, in
ours' precision: its part of ours' time per image.

``--variants`` then measures ours again under other settings, each a ``+``-joined list:
a precision (``fp16``, ``bf16``, ``fp32``; fp16 when none is named) and optionally
``channels_last`` (UNet and VAE weights in NHWC), ``cudnn_benchmark`` (cuDNN times its
convolution algorithms for each new shape and keeps the fastest), ``cudnn_attention``
(attention through cuDNN's fused kernels first: torch tries them first only on Hopper
and Blackwell with a recent cuDNN, else last, after FlashAttention-2, which is not
written for Hopper; device/environment.py prints the order the machine has),
``fused_qkv`` (diffusers' ``fuse_qkv_projections``: one matrix product for the query, key
and value, or key and value in cross-attention) and one way of compiling
the UNet with the generator's ``compile=True``: ``compile`` (its inductor options as they
stand), ``tuned`` (those diffusers' SDXL guide sets: 1x1 convolutions as matrix products,
coordinate-descent tuning, no epilogue fusion), ``autotune`` (torch.compile's
max-autotune without CUDA graphs) or ``cudagraphs`` (replayed as CUDA graphs), e.g. ``--variants
fp16,fp16+cudnn_benchmark,fp16+channels_last+compile,fp16+tuned``. Each variant
draws one warm-up batch (so compilation and autotuning stay out of the timing) and then
``--variant-batches`` batches of the same size, and is set back afterwards; a variant that
fails prints its error as its row and the next one runs. Variants draw batches of the
size ours used. What the H100 measured, and what the generator took from it, is in
benchmarks/README.md.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from measure import (
    checked_arguments,
    cudnn_attention_first,
    model_parser,
    peak_memory_gb,
    timed,
)

from erasebench import generate
from erasebench.cache import ImageCache
from erasebench.generate import Generator
from erasebench.hardware import describe_device
from erasebench.models import load_model
from erasebench.specs import GenerationSpec, ModelSpec, PromptSpec

TFLOP_PER_GUIDED_STEP = 1.61  # SD v1.4 UNet at 512 px, both halves of the guidance batch
TFLOP_DECODE = 2.5  # the VAE decode of one 512 px image (83 - 50 * 1.61)


def prompts(count: int, offset: int = 0) -> list[PromptSpec]:
    return [PromptSpec(text=f"a photo of object number {i % 10}", seed=offset + i)
            for i in range(count)]


def peers_loop(model, count: int, steps: int, device: torch.device) -> float:
    """Seconds for ``count`` images, one pipeline call each, fp32 (the peers' way)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipeline = StableDiffusionPipeline(
        vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer,
        unet=model.unet, scheduler=DDIMScheduler.from_config(model.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    size = model.native_size

    def run() -> None:
        for p in prompts(count, 10_000):
            generator = torch.Generator(device).manual_seed(p.seed)
            pipeline(p.text, num_inference_steps=steps, guidance_scale=7.5, height=size,
                     width=size, generator=generator, output_type="np")

    return timed(run, device)


# The ways a variant can compile the UNet: inductor's options for each (the generator's
# COMPILE_OPTIONS while the variant runs).
COMPILE_PRESETS: dict[str, dict | None] = {
    "compile": None,  # the generator's own COMPILE_OPTIONS
    # the settings diffusers' guide to faster SDXL inference gives for its UNet
    "tuned": {"conv_1x1_as_mm": True, "coordinate_descent_tuning": True,
              "epilogue_fusion": False},
    # torch.compile's mode "max-autotune-no-cudagraphs": each matrix product and convolution
    # timed in several implementations at compile time (minutes)
    "autotune": {"max_autotune": True, "coordinate_descent_tuning": True},
    # the compiled UNet replayed as CUDA graphs (torch.compile's "reduce-overhead"): pays
    # only if the GPU waits on the CPU between kernels (unet_profile.py's wall-time share);
    # the weights' cast copies are new tensors each batch, so each batch records anew
    "cudagraphs": {"triton.cudagraphs": True},
}


# the on/off parts of a variant's name, each a Variant field of the same name
SWITCHES = ("channels_last", "cudnn_benchmark", "cudnn_attention", "fused_qkv")


@dataclass(frozen=True)
class Variant:
    """One way of running ours: a precision and the optional UNet/VAE optimisations."""

    name: str
    precision: str = "fp16"
    channels_last: bool = False
    compile: str | None = None  # a COMPILE_PRESETS name
    cudnn_benchmark: bool = False  # cuDNN times its convolution algorithms per shape
    cudnn_attention: bool = False  # scaled_dot_product_attention tries cuDNN's kernels first
    fused_qkv: bool = False  # one projection for q, k and v (k and v in cross-attention)

    @classmethod
    def parse(cls, name: str) -> Variant:
        parts = set(name.split("+"))
        precisions = parts & {"fp16", "bf16", "fp32"}
        compiles = parts & set(COMPILE_PRESETS)
        unknown = parts - precisions - compiles - set(SWITCHES)
        if unknown or len(precisions) > 1 or len(compiles) > 1:
            raise SystemExit(f"unknown variant {name!r}: join one of fp16, bf16, fp32, "
                             f"optionally any of {', '.join(SWITCHES)} and one of "
                             f"{', '.join(COMPILE_PRESETS)} by '+'")
        return cls(name, next(iter(precisions), "fp16"),
                   compile=next(iter(compiles), None),
                   **{switch: switch in parts for switch in SWITCHES})


@contextlib.contextmanager
def applied(model, variant: Variant) -> Iterator[None]:
    """The model (and the generator's compile options) under ``variant`` within the block,
    as they were afterwards."""
    saved_options, saved_benchmark = generate.COMPILE_OPTIONS, torch.backends.cudnn.benchmark
    options = COMPILE_PRESETS[variant.compile] if variant.compile else None
    if options is not None:
        generate.COMPILE_OPTIONS = options
    torch.backends.cudnn.benchmark = variant.cudnn_benchmark or saved_benchmark
    if variant.channels_last:
        model.unet.to(memory_format=torch.channels_last)
        model.vae.to(memory_format=torch.channels_last)
    if variant.fused_qkv:
        model.unet.fuse_qkv_projections()
    try:
        with cudnn_attention_first() if variant.cudnn_attention else contextlib.nullcontext():
            yield
    finally:
        if variant.fused_qkv:  # the fused copies stay, unused; the processors go back
            model.unet.unfuse_qkv_projections()
        generate.COMPILE_OPTIONS = saved_options
        torch.backends.cudnn.benchmark = saved_benchmark
        if variant.channels_last:
            model.unet.to(memory_format=torch.contiguous_format)
            model.vae.to(memory_format=torch.contiguous_format)
        if variant.compile:
            # the next variant compiles afresh: on torch 2.11 a graph made for one layout
            # fails on the other instead of recompiling
            model.discard_compiled_unet()


def row(measure: str, value: str) -> None:
    print(f"| {measure} | {value} |", flush=True)


def measure_variants(model, variants: list[Variant], args, batch: int, device: torch.device,
                     ours_rate: float, ceiling: float | None) -> None:
    print("\n| variant | batch | images/s | vs ours | share of the FLOP ceiling | "
          "peak memory (GB) |\n|---|---|---|---|---|---|", flush=True)
    for variant in variants:
        settings = GenerationSpec(steps=args.steps, precision=variant.precision)
        try:
            with applied(model, variant):
                generator = Generator(model, settings, batch_size=batch, progress=False,
                                      compile=variant.compile is not None)
                generator.images(prompts(batch, 30_000))  # warm-up: compilation, autotuning
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                timed_prompts = prompts(batch * args.variant_batches)
                seconds = timed(functools.partial(generator.images, timed_prompts), device)
                rate = len(timed_prompts) / seconds
        except Exception as error:  # one variant's failure is a result; the others still run
            print(f"| {variant.name} | {batch} | failed: {type(error).__name__}: "
                  f"{str(error).splitlines()[0][:200] if str(error) else ''} | - | - | - |",
                  flush=True)
            continue
        share = f"{100 * rate / ceiling:.1f}%" if ceiling else "-"
        print(f"| {variant.name} | {batch} | {rate:.3f} | {rate / ours_rate:.2f}x | {share} | "
              f"{peak_memory_gb(device):.1f} |", flush=True)


def measure_cache_writes(generator: Generator, count: int, device: torch.device,
                         ours_rate: float, folder: str) -> Sequence:
    """Draws ``count`` images into an image cache in ``folder``; returns them as a run's
    scorers get them (read from the cache when used)."""
    generator.cache = ImageCache(folder)
    try:
        drawn: list = []
        seconds = timed(lambda: drawn.append(generator.images(prompts(count, 40_000))), device)
    finally:
        generator.cache = None
    rate = count / seconds
    row("ours writing each image to the image cache: images/s", f"{rate:.3f}")
    row("with the cache, as a share of ours without it", f"{100 * rate / ours_rate:.1f}%")
    return drawn[0]


def measure_decode(model, batch: int, precision: str, device: torch.device,
                   ours_rate: float, compiled: bool = False) -> None:
    """The VAE decode's part of ours' time: a batch of latents decoded as the generator
    decodes them (weights cast to the precision), once to warm up, then timed; with
    ``compiled``, again under ``torch.compile`` (the generator's backend and options, a
    static batch), which says what compiling the decode too would win."""
    dtype = generate.resolve_precision(precision, device)
    side = model.native_size // model.vae_scale
    latents = torch.randn(batch, model.vae.config.latent_channels, side, side, device=device)
    ways = {"VAE decode": model.vae.decode}
    if compiled:
        ways["VAE decode compiled"] = torch.compile(
            model.vae.decode, backend=generate.COMPILE_BACKEND,
            options=generate.COMPILE_OPTIONS or None, dynamic=False)
    with torch.no_grad(), generate.weights_cast([model.vae], dtype):
        for name, way in ways.items():
            decode = functools.partial(way, latents.to(model.vae.dtype))
            decode()  # warm-up: compilation, kernels loaded
            per_image = timed(decode, device) / batch
            row(f"{name}: ms per image", f"{1000 * per_image:.1f}")
            row(f"{name}: share of ours' time per image", f"{100 * per_image * ours_rate:.1f}%")


def measure_scorers(images: Sequence, seconds: float, device: torch.device) -> None:
    with tempfile.TemporaryDirectory() as home:
        import open_clip
        from safetensors.torch import save_file

        from erasebench.scorers.clip import ClipScorer
        from erasebench.scorers.imagenet import ImageNetClassifier
        from erasebench.scorers.nudity import NudityDetector
        from erasebench.testing import write_random_scorer_weights

        os.environ["TORCH_HOME"] = home
        write_random_scorer_weights(home)
        full_clip = os.path.join(home, "clip-vit-b-32.safetensors")
        save_file(open_clip.create_model("ViT-B-32-quickgelu").state_dict(), full_clip)
        resnet = ImageNetClassifier(device=str(device))
        clip = ClipScorer("ViT-B-32-quickgelu", str(device), full_clip)
        nudenet = NudityDetector(str(device))
        scorers = {
            "ResNet-50": lambda: resnet.logits(images),
            "CLIP ViT-B/32": lambda: clip.scores(images, ["a photo"] * len(images)),
            f"NudeNet ({nudenet.runtime})": lambda: nudenet.detect(images),
        }
        for name, score in scorers.items():
            score()  # load and warm up
            row(f"{name}: share of the generation time of the same images",
                f"{100 * timed(score, device) / seconds:.1f}%")


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("--images", type=int, default=64, help="images ours draws, timed")
    parser.add_argument("--peer-images", type=int, default=4,
                        help="images the per-image fp32 loop draws, timed")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="ours' batch (default: fitted to the GPU's memory)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    parser.add_argument("--no-peers", action="store_true", help="skip the per-image loop")
    parser.add_argument("--no-scorers", action="store_true", help="skip the scorer timings")
    parser.add_argument("--no-cache", action="store_true",
                        help="skip drawing the images again with the image cache")
    parser.add_argument("--compile-decode", action="store_true",
                        help="time the VAE decode under torch.compile too")
    parser.add_argument("--variants", default="",
                        help="comma-separated variants to measure after ours (see above)")
    parser.add_argument("--variant-batches", type=int, default=1,
                        help="timed batches per variant, after one warm-up batch")
    args = checked_arguments(parser)
    # parsed first, so that a bad name fails before the model is built
    variants = [Variant.parse(name) for name in filter(None, args.variants.split(","))]
    device = torch.device(args.device)
    model = load_model(ModelSpec(id=args.model), device=device)
    print(f"model {args.model} on {describe_device(str(device))}, {args.steps} steps, "
          "guidance 7.5")

    settings = GenerationSpec(steps=args.steps, precision=args.precision)
    generator = Generator(model, settings, batch_size=args.batch_size, progress=False)
    generator.images(prompts(min(4, args.images), 20_000))  # warm-up: fits the batch size
    # and a batch of the timed shape: on an H100 the first batch of a new size ran ~10%
    # slower (kernels loaded and plans chosen on first use)
    generator.images(prompts(min(generator.batch_size or args.images, args.images), 25_000))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    images: list = []
    ours = timed(lambda: images.extend(generator.images(prompts(args.images))), device)
    ours_rate = args.images / ours
    image_tflop = args.steps * TFLOP_PER_GUIDED_STEP + TFLOP_DECODE
    ceiling = args.peak_tflops / image_tflop if args.model == "sd-v1-random" else None
    print("| measure | value |\n|---|---|")
    row(f"ours: images/s (batch {generator.batch_size}, {args.precision})", f"{ours_rate:.3f}")
    if ceiling:
        row(f"share of the FLOP ceiling ({ceiling:.2f} images/s at {args.peak_tflops:g} "
            "TFLOP/s)", f"{100 * ours_rate / ceiling:.1f}%")
    if device.type == "cuda":
        row("peak memory (GB)", f"{peak_memory_gb(device):.1f}")
    measure_decode(model, generator.batch_size or args.images, args.precision, device,
                   ours_rate, args.compile_decode)
    with tempfile.TemporaryDirectory() as cache_folder:
        scored: Sequence = images
        if not args.no_cache:  # the scorers then read the images from the cache, as in a run
            scored = measure_cache_writes(generator, args.images, device, ours_rate,
                                          cache_folder)
        if not args.no_peers:
            peers_rate = args.peer_images / peers_loop(model, args.peer_images, args.steps,
                                                       device)
            row("peers' per-image fp32 loop: images/s", f"{peers_rate:.3f}")
            row("speed-up over the per-image loop", f"{ours_rate / peers_rate:.2f}x")
        if not args.no_scorers:
            measure_scorers(scored, ours, device)
    if variants:
        measure_variants(model, variants, args, generator.batch_size, device, ours_rate,
                         ceiling)


if __name__ == "__main__":
    main()
