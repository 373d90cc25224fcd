"""The in-tree sampling loop: batched, classifier-free guidance, one RNG per sample.

An image depends only on (model, prompt, negative prompt, seed, guidance, steps,
scheduler, size, precision): each sample's initial noise comes from its own CPU
generator seeded with its seed, and every scheduler offered here is deterministic, so
batch size and order never change an image (bit-exact on CPU, see below; on a GPU up to
the last bits its kernels choose by batch size). Distinct prompts are encoded once.
Images go through the content-addressed :class:`ImageCache`, each batch's written on
background threads while the next batch is sampled, and come back from it when used
(:class:`CachedImages`).

Why network calls on CPU run in chunks of a fixed row count: oneDNN/MKL choose their
kernels, and so the summation order, by the shape of a call, which moves a sample's result
in the last bits and, after rounding to 8-bit pixels, flips the odd pixel. On this
project's 2-core machine a call of 8 rows and one of 16 differed on one thread, and a batch
of 64 images (128 UNet rows) and one of 3 in 4 to 8 values of a few ten thousand on one or
two threads, the miniature world's default batch included. So every call of a network on
CPU gets exactly the rows :func:`cpu_call_rows` gives it (a batch's rows in chunks of that
many, the last chunk padded with copies of its last row), and a row's arithmetic is the
same whatever batch it came in. The thresholds where kernels change differ between CPUs;
a fixed row count crosses none.

Half precision (``precision`` fp16/bf16; ``auto`` is fp16 on CUDA) means the UNet's and
VAE's weights cast to it for the batch, as diffusers' pipelines loaded with ``torch_dtype``
run, not fp32 weights under autocast: autocast keeps GroupNorm, and so most of each block's
elementwise work, in fp32. On an H100 the cast weights drew 1.25x the images per second at
batch 16 with 23% less memory (benchmarks/README.md). The text encoder stays in fp32 (one
call per distinct text), and so do the latents between steps and the scheduler's arithmetic.

``compile=True`` samples with :meth:`DiffusionModel.compiled_unet` (``torch.compile``):
on an H100, with the UNet's weights in channels_last, 1.35x on top of cast weights at batch
64 (4.32 images/s), after a one-time compile of about a minute; this path itself, the
weights as they are, ran there but is not yet timed (benchmarks/README.md). Off by
default. Only full batches run compiled, each batch size its own static graph; the batch
that fits the batch size to memory and a list's last, smaller batch run eager
(:meth:`Generator._network` says why). Compiled images may differ from eager ones in the
last bits, as GPU kernels already do between batch sizes, so compiling is not part of an
image's cache key.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.progress import Progress

from erasebench import memory
from erasebench.cache import Claim, ImageCache, image_key
from erasebench.errors import UserError
from erasebench.faults import checkpoint
from erasebench.image_sequences import CachedImages
from erasebench.models import DiffusionModel
from erasebench.specs import GenerationSpec, PromptSpec

COMPILE_BACKEND: Any = "inductor"  # torch.compile's backend; the tests use one that traces
# Inductor's options for the compiled UNet (torch._inductor.list_options()); none yet: on an
# H100 the default mode gave 1.35x, and benchmarks/generation.py's variants try others.
COMPILE_OPTIONS: dict[str, Any] = {}


# Rows of each network's calls on CPU. The UNet's and the VAE decode's work per row grows with
# the latent's positions (height x width), and one thread's kernels run fastest per row once a
# call covers about 4096 positions in the UNet and 2048 in the decode (benchmarks/README.md,
# "Rows per network call on a CPU"): the miniature world's model (8x8 latents) 3.0 ms per UNet
# row at 64 rows against 3.1 at 32 and 4.3-4.7 at 8, its decode 4.8-5.1 ms at 32 rows against
# 6.1-6.5 at 64; the tiny test model (16x16 latents) 2.8 ms per UNet row at 16 against 3.6 at 8
# and 3.9 at 64, its decode 2.8 at 8 and 16 against 3.5 at 32. More rows than that pad a last,
# smaller batch (and a test's few images) further for little or nothing. The text encoder,
# once per distinct text, takes 16 rows for models of up to 64 px (0.28 ms per row).
CPU_CALL_POSITIONS = {"unet": 4096, "vae": 2048}
MIN_CPU_ROWS = 8  # SD-sized models (64x64 latents): a few rows already fill a call


def cpu_call_rows(model: DiffusionModel, network: str) -> int:
    """The rows of every call of ``network`` ("text_encoder", "unet" or "vae") on CPU (the
    module docstring says why fixed): for the UNet and the VAE decode, enough rows to cover
    :data:`CPU_CALL_POSITIONS` latent positions at the model's native size (64 and 32 for
    the miniature world's model, 16 and 8 for the tiny test model), at least
    :data:`MIN_CPU_ROWS` (SD's); for the text encoder 16, or 8 for models above 64 px."""
    if network == "text_encoder":
        return 16 if model.native_size <= 64 else MIN_CPU_ROWS
    size = model.unet.config.sample_size  # an int, or (height, width) for some UNets
    height, width = (size, size) if isinstance(size, int) else size
    return max(MIN_CPU_ROWS, CPU_CALL_POSITIONS[network] // (int(height) * int(width)))


def call_in_chunks(function: Any, *batched: torch.Tensor, rows: int,
                   **fixed: Any) -> torch.Tensor:
    """``function(*batched, **fixed)``; on CPU in calls of exactly ``rows`` rows each, the
    last one padded with copies of its last row, and the padding's outputs dropped."""
    if batched[0].device.type != "cpu":
        return function(*batched, **fixed)
    outputs = []
    for start in range(0, batched[0].shape[0], rows):
        chunk = [x[start : start + rows] for x in batched]
        real = chunk[0].shape[0]
        padded = [torch.cat([x, x[-1:].expand(rows - real, *x.shape[1:])]) for x in chunk]
        outputs.append(function(*padded, **fixed)[:real])
    return torch.cat(outputs)


class NonFiniteImageError(RuntimeError):
    """The model produced NaN/inf for some images; they are reported, never cached or scored."""

    def __init__(self, prompts: Sequence[PromptSpec]) -> None:
        self.prompts = list(prompts)
        listed = "; ".join(f"{p.text!r} seed {p.seed}" for p in self.prompts[:5])
        more = f" and {len(self.prompts) - 5} more" if len(self.prompts) > 5 else ""
        super().__init__(f"non-finite values in {len(self.prompts)} image(s): {listed}{more}")


def make_scheduler(name: str, config: dict[str, Any]) -> Any:
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        LMSDiscreteScheduler,
        PNDMScheduler,
    )

    classes = {"ddim": DDIMScheduler, "lms": LMSDiscreteScheduler,
               "pndm": PNDMScheduler, "dpm": DPMSolverMultistepScheduler}
    extra = {"skip_prk_steps": True} if name == "pndm" else {}  # as the SD pipeline does
    return classes[name].from_config(config, **extra)


def default_batch_size(model: DiffusionModel) -> int:
    """Images per batch when not told and not measured: small models (32-px miniature world,
    tiny test model) run 64 at once (on 2 CPU cores 25% faster per image than 8); SD-sized
    ones 8 (on a GPU the batch is measured instead: :mod:`erasebench.memory`)."""
    return 64 if model.native_size <= 64 else 8


def resolved_precision_name(precision: str, device: torch.device) -> str:
    """``precision`` (a :class:`GenerationSpec`'s) as drawn on ``device``: ``auto`` is
    fp16 on CUDA, fp32 elsewhere."""
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    return precision


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    return {"fp32": torch.float32, "fp16": torch.float16,
            "bf16": torch.bfloat16}[resolved_precision_name(precision, device)]


@contextlib.contextmanager
def tensors_cast(tensors: Iterable[torch.Tensor], dtype: torch.dtype) -> Iterator[None]:
    """The floating-point ``tensors`` (parameters, buffers) in ``dtype`` within the block;
    their own data back afterwards, bit for bit, whatever happens inside. Each is swapped
    for a cast copy, never cast in place: the fp32 weights are the masters that edits are
    added to and erasers train, and a round trip through half precision would change them."""
    swapped: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        for tensor in tensors:
            if tensor.is_floating_point() and tensor.dtype != dtype:
                swapped.append((tensor, tensor.data))
                tensor.data = tensor.data.to(dtype)
        yield
    finally:
        for tensor, original in swapped:
            tensor.data = original


def weights_cast(modules: Sequence[torch.nn.Module],
                 dtype: torch.dtype) -> contextlib.AbstractContextManager[None]:
    """The modules' floating-point parameters and buffers in ``dtype`` within the block
    (:func:`tensors_cast`)."""
    return tensors_cast(itertools.chain.from_iterable(
        itertools.chain(module.parameters(), module.buffers()) for module in modules), dtype)


@dataclass
class Generator:
    """Generates (or fetches from the cache) the images of a list of prompts."""

    model: DiffusionModel
    settings: GenerationSpec
    cache: ImageCache | None = None
    batch_size: int | None = None  # None: fitted to GPU memory, else default_batch_size
    progress: bool = True
    # Fit the batch to the memory the first batch took (None: on CUDA, for SD-sized models,
    # when no batch size is given).
    fit_batch: bool | None = None
    compile: bool = False  # sample with the compiled UNet (module docstring)
    drawn: int = field(default=0, init=False)  # images sampled here (not read from the cache)
    # Seconds spent waiting for images another process was drawing (_claim_batch).
    awaited: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.compile:  # refused now, not after the first, eager batch
            self.model.compiled_unet(COMPILE_BACKEND, COMPILE_OPTIONS)
        if self.fit_batch is None:
            self.fit_batch = (self.batch_size is None and self.model.device.type == "cuda"
                              and self.model.native_size > 64)
        if self.batch_size is None:
            self.batch_size = memory.PROBE_BATCH if self.fit_batch else \
                default_batch_size(self.model)

    @property
    def size(self) -> tuple[int, int]:
        native = self.model.native_size
        return (self.settings.height or native, self.settings.width or native)

    def key_fields(self, prompt: PromptSpec, fingerprint: str | None = None) -> dict[str, Any]:
        """The image cache's key fields of ``prompt``'s image, drawn by the model as it is
        now or, given its ``fingerprint``, as an edit would make it."""
        height, width = self.size
        guidance = self.settings.guidance if prompt.guidance is None else prompt.guidance
        return {
            "model": fingerprint or self.model.fingerprint, "prompt": prompt.text,
            "negative": prompt.negative,
            "seed": prompt.seed, "guidance": float(guidance), "steps": self.settings.steps,
            "scheduler": self.settings.scheduler, "height": height, "width": width,
            "precision": self._precision_key(),
        }

    def keys(self, prompts: Sequence[PromptSpec], fingerprint: str | None = None) -> list[str]:
        return [image_key(self.key_fields(prompt, fingerprint)) for prompt in prompts]

    def images(self, prompts: Sequence[PromptSpec]) -> Sequence[Image.Image]:
        """One image per prompt, in order; cached ones are read, the others generated.

        Prompts that would give the same image (same key) are generated once. With a cache
        the images come back as :class:`CachedImages`, read from the cache when used, so
        that none is held here: thousands of 512 px images would not fit in memory. Images
        another process is drawing (:meth:`_claim_batch`) are waited for.
        """
        keys = self.keys(prompts)
        first = self._first_prompts(prompts, keys)
        cached = self.cache.sound_keys(list(first)) if self.cache is not None else set()
        drawn = self._draw(first, [key for key in first if key not in cached], wait=True)
        if self.cache is not None:  # every write has finished: _draw waited for them
            return CachedImages(self.cache, keys)
        return [drawn[key] for key in keys]

    def draw_unclaimed(self, prompts: Sequence[PromptSpec]) -> int:
        """Draws into the cache those of ``prompts``' images that no process has drawn or
        is drawing, and returns how many it drew: how a process with no unit left helps
        one another process is running (``Runner.help``). Unlike :meth:`images` it waits
        for no other process's images, and takes an entry that is there as sound (the
        unit's own process checks each before it uses it, and draws a damaged one again):
        checking would read every PNG of a unit mostly drawn."""
        if self.cache is None:
            raise ValueError("only a generator with an image cache can draw for another "
                             "process")
        keys = self.keys(prompts)
        first = self._first_prompts(prompts, keys)
        present = self.cache.present_keys(list(first))
        before = self.drawn
        self._draw(first, [key for key in first if key not in present], wait=False)
        return self.drawn - before

    @staticmethod
    def _first_prompts(prompts: Sequence[PromptSpec],
                       keys: Sequence[str]) -> dict[str, PromptSpec]:
        """Each distinct key's first prompt, in the prompts' order."""
        return {key: prompts[index] for index, key in reversed(list(enumerate(keys)))}

    def _draw(self, first: dict[str, PromptSpec], missing: list[str],
              wait: bool) -> dict[str, Image.Image]:
        """Draws the images of ``missing`` (keys of ``first``) in batches, into the cache
        when there is one (then returns nothing, else the images by key), each batch's
        images claimed first (:meth:`_claim_batch`): those another process draws are left
        to it, and waited for with ``wait``, else passed over."""
        drawn: dict[str, Image.Image] = {}  # only without a cache
        claims: dict[str, Claim] = {}  # the batch's, each released once it is written
        try:
            with self._progress(len(missing)) as advance, self._cache_writer() as cache_put:
                while missing:
                    claims, elsewhere = self._claim_batch(missing, wait)
                    batch = list(claims)
                    if not batch and not elsewhere:  # not waiting: the rest are others'
                        break
                    missing = [key for key in missing
                               if key not in claims and key not in elsewhere]
                    advance(len(elsewhere))
                    if not batch:
                        continue
                    pixels = self._sample_or_halve([first[key] for key in batch])
                    if pixels is None:  # retried at the halved batch size
                        for claim in claims.values():
                            claim.release()
                        missing = batch + missing
                        continue
                    checkpoint("generate.batch")
                    for key, array in zip(batch, pixels, strict=True):
                        image = Image.fromarray(array)
                        if self.cache is None:
                            drawn[key] = image
                        cache_put(key, image, {**self.key_fields(first[key]),
                                               "label": first[key].label}, claims[key].release)
                    advance(len(batch))
        finally:  # every write has finished (leaving the block waited): only the claims of a
            for claim in claims.values():  # batch that failed can be left to release
                claim.release()
        return drawn

    def _claim_batch(self, missing: list[str],
                     wait: bool = True) -> tuple[dict[str, Claim], set[str]]:
        """Up to a batch of ``missing``, in order, claimed to be drawn here
        (:meth:`ImageCache.claim`), and those another process has drawn meanwhile. Images
        another process is drawing are passed over, to be found drawn later; when it is
        drawing all of them, this waits for the first, or, without ``wait``, claims
        nothing. So processes that share a cache and ask for the same images at the same
        time split them; an image never depends on its batch, so how they split them
        changes nothing."""
        if self.cache is None:
            return {key: Claim(None) for key in missing[: self.batch_size]}, set()
        claims: dict[str, Claim] = {}
        for key in missing:
            if len(claims) == self.batch_size:
                break
            claim = self.cache.claim(key)
            if claim is not None:
                claims[key] = claim
        if not claims:
            if not wait:
                return {}, set()
            began = time.perf_counter()
            claims[missing[0]] = self.cache.claim(missing[0], wait=True)  # type: ignore[assignment]
            self.awaited += time.perf_counter() - began
        elsewhere = self.cache.sound_keys(list(claims))
        for key in elsewhere:
            claims.pop(key).release()
        return claims, elsewhere

    def _sample_or_halve(self, prompts: Sequence[PromptSpec],
                         conditioning: torch.Tensor | None = None) -> np.ndarray | None:
        """:meth:`_sample_and_fit` on one batch; out of memory, None, with the batch size
        halved for the caller to retry (a batch of one raises). Nothing is lost: images
        never depend on the batch size. The failed batch's memory is freed out of the
        handler, whose error held the sampling's frames."""
        pixels = None
        try:
            pixels = self._sample_and_fit(prompts, conditioning)
        except torch.OutOfMemoryError:
            if len(prompts) == 1:
                raise
        if pixels is None:
            self.batch_size = len(prompts) // 2
            memory.free_device_memory()
        return pixels

    def _sample_and_fit(self, prompts: Sequence[PromptSpec],
                        conditioning: torch.Tensor | None = None) -> np.ndarray:
        """:meth:`sample`; the first time with ``fit_batch``, the batch size is then set
        from the memory this batch took (:func:`erasebench.memory.fitting_batch`)."""
        if not self.fit_batch:
            return self.sample(prompts, conditioning)
        device = self.model.device
        with memory.measure_peak(device) as peak:
            pixels = self.sample(prompts, conditioning)
        self.batch_size = memory.fitting_batch(memory.free_bytes(device),
                                               peak.bytes / len(prompts))
        self.fit_batch = False
        return pixels

    @contextlib.contextmanager
    def _cache_writer(self) -> Iterator[Any]:
        """Where a batch's images go: written to the cache in the background, so that the
        next batch is sampled meanwhile (:meth:`ImageCache.writing_in_background`)."""
        if self.cache is None:
            yield lambda key, image, meta, then: None
            return
        with self.cache.writing_in_background() as put:
            yield put

    @contextlib.contextmanager
    def _progress(self, total: int) -> Iterator[Any]:
        if not self.progress or total == 0:
            yield lambda n: None
            return
        with Progress(transient=True) as bar:
            task = bar.add_task("generating images", total=total)
            yield lambda n: bar.advance(task, n)

    def images_from_conditioning(self, prompts: Sequence[PromptSpec],
                                 conditioning: torch.Tensor) -> list[Image.Image]:
        """Images of ``prompts`` (their seeds, guidance and negative prompts) drawn with
        ``conditioning`` (n, tokens, dim) in place of their texts' encodings, e.g. an
        attacker's embeddings. Not cached: the conditioning has no stable name. The batch is
        fitted to memory as :meth:`images` fits it, if that has not drawn a batch yet (a
        resumed unit whose own images were all cached), and halved out of memory as there."""
        if len(conditioning) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(conditioning)} conditionings")
        images: list[Image.Image] = []
        while len(images) < len(prompts):
            batch = slice(len(images), len(images) + (self.batch_size or len(prompts)))
            pixels = self._sample_or_halve(prompts[batch], conditioning[batch])
            if pixels is not None:  # else retried at the halved batch size
                images.extend(Image.fromarray(array) for array in pixels)
        return images

    @torch.no_grad()
    def sample(self, prompts: Sequence[PromptSpec],
               conditioning: torch.Tensor | None = None) -> np.ndarray:
        """Runs the sampler on one batch; returns uint8 images of shape (B, H, W, 3).
        ``conditioning`` replaces the encodings of the prompts' texts when given."""
        model, settings = self.model, self.settings
        device = model.device
        height, width = self.size
        scheduler = make_scheduler(settings.scheduler, model.scheduler_config)
        scheduler.set_timesteps(settings.steps, device=device)

        texts = [p.text for p in prompts] + [p.negative for p in prompts]
        distinct = sorted(set(texts))
        embeddings = call_in_chunks(lambda ids: model.text_encoder(ids)[0],
                                    model.token_ids(distinct).to(device),
                                    rows=cpu_call_rows(model, "text_encoder"))
        table = dict(zip(distinct, embeddings, strict=True))
        cond = torch.stack([table[p.text] for p in prompts]) if conditioning is None else \
            conditioning.to(device=device, dtype=embeddings.dtype)
        uncond = torch.stack([table[p.negative] for p in prompts])
        context = torch.cat([uncond, cond])

        latents = initial_noise(prompts, model.unet.config.in_channels,
                                height // model.vae_scale, width // model.vae_scale)
        latents = latents.to(device) * scheduler.init_noise_sigma
        guidance = torch.tensor(
            [settings.guidance if p.guidance is None else p.guidance for p in prompts],
            device=device,
        ).view(-1, 1, 1, 1)
        dtype = resolve_precision(settings.precision, device)
        unet, unet_rows = self._network(len(prompts)), cpu_call_rows(model, "unet")
        with weights_cast((model.unet, model.vae), dtype):
            # inputs in each network's own weight dtype (also right for a model stored in half)
            unet_dtype, vae_dtype = model.unet.dtype, model.vae.dtype
            for t in scheduler.timesteps:
                both = scheduler.scale_model_input(torch.cat([latents, latents]), t)
                noise = call_in_chunks(
                    lambda x, c, t: unet(x.to(unet_dtype), t,
                                         encoder_hidden_states=c.to(unet_dtype)).sample,
                    both, context, rows=unet_rows, t=t).float()
                uncond_noise, cond_noise = noise.chunk(2)
                noise = uncond_noise + guidance * (cond_noise - uncond_noise)
                latents = scheduler.step(noise, t, latents).prev_sample
            decoded = call_in_chunks(lambda z: model.vae.decode(z.to(vae_dtype)).sample,
                                     latents / model.vae.config.scaling_factor,
                                     rows=cpu_call_rows(model, "vae")).float()
        finite = torch.isfinite(decoded).flatten(1).all(dim=1)
        if not bool(finite.all()):
            raise NonFiniteImageError([p for p, ok in zip(prompts, finite, strict=True) if not ok])
        pixels = ((decoded / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        self.drawn += len(prompts)
        return pixels.permute(0, 2, 3, 1).cpu().numpy()

    def _network(self, images: int) -> Any:
        """The UNet a batch of ``images`` samples with: with ``compile``, the compiled one
        for full batches only. Each batch size compiles a static graph of its own
        (:meth:`DiffusionModel.compiled_unet` says why not one with a symbolic batch), so
        the batch that fits the batch size to memory (a minute of compiling for two images)
        and a list's last, smaller batch run eager: a few seconds of a unit's minutes,
        against a minute of compiling for each new size."""
        if self.compile and not self.fit_batch and images == self.batch_size:
            return compiled_or_explained(self.model.compiled_unet(COMPILE_BACKEND,
                                                                  COMPILE_OPTIONS))
        return self.model.unet

    def _precision_key(self) -> str:
        dtype = resolve_precision(self.settings.precision, self.model.device)
        # Half-precision images were drawn under autocast before the weights were cast (the
        # last bits differ): a new label keeps such cached images out; fp32 keys unchanged.
        return str(dtype) if dtype == torch.float32 else f"{dtype}, weights cast"


def compiled_or_explained(compiled: Any) -> Any:
    """``compiled`` (a torch.compile'd module), whose compile failures (no C compiler, no
    Triton for this GPU, an inductor bug) become one clear error instead of inductor's pages
    of traceback. Raised at the first batch, before anything of it is cached."""
    import torch._dynamo.exc
    import torch._inductor.exc

    failures = (torch._dynamo.exc.BackendCompilerFailed, torch._inductor.exc.InductorError)

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return compiled(*args, **kwargs)
        except failures as error:
            cause = getattr(error, "inner_exception", None) or error
            first_line = next(iter(str(cause).strip().splitlines()), "")
            raise UserError(f"torch.compile could not compile the UNet ({type(cause).__name__}: "
                            f"{first_line[:300]}); run without --compile, which draws the same "
                            "images, and the run resumes where it stopped") from error

    return call


def initial_noise(prompts: Sequence[PromptSpec], channels: int, height: int,
                  width: int) -> torch.Tensor:
    """Each sample's noise from its own seeded CPU generator: independent of batch and device."""
    return torch.stack([
        torch.randn((channels, height, width), generator=torch.Generator().manual_seed(p.seed))
        for p in prompts
    ])
