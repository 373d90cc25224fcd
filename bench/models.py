"""One wrapper around a text-to-image diffusion model: tokenizer, text encoder, UNet,
scheduler config and decoder (a VAE), loaded from a diffusers folder or hub id, or built
from config (the tiny model of the tests).

``DiffusionModel.fingerprint`` hashes config and weights; every cache is keyed on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from erasebench.errors import UserError
from erasebench.hub import download_line, hub_unreachable, missing_from_cache
from erasebench.model_files import FOLDER_MARK, missing_from_folder
from erasebench.specs import ModelSpec
from erasebench.tokenizer import sd_tokenizer

COMPONENTS = ("text_encoder", "unet", "vae")
TINY_MODEL_ID = "tiny"
# Stable Diffusion v1's noise schedule; small models use it too, so erasers see the noise
# levels they expect.
SD_V1_SCHEDULER = {
    "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085,
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
    "set_alpha_to_one": False, "steps_offset": 1,
}
SHAPES_MODEL_ID = "shapes"  # the miniature world's model, shipped in tasks/shapes/weights
SD_RANDOM_MODEL_ID = "sd-v1-random"  # SD v1.4's architecture, random weights
BUILT_IN_MODEL_IDS = (TINY_MODEL_ID, SD_RANDOM_MODEL_ID, SHAPES_MODEL_ID)
# The message dynamo's tracing of diffusers' version checks warns with (compiled_unet).
_DIFFUSERS_VERSION_CHECK_WARNING = (r"(?s)Dynamo detected a call to a `functools\.lru_cache`"
                                    r"-wrapped function.*diffusers.*is_torch_version\(")


@dataclass
class DiffusionModel:
    """A text-to-image latent diffusion model in the shape of Stable Diffusion v1."""

    tokenizer: Any  # transformers.CLIPTokenizer
    text_encoder: Any  # transformers.CLIPTextModel
    unet: Any  # diffusers.UNet2DConditionModel
    vae: Any  # diffusers.AutoencoderKL, or a PixelShuffleAutoencoder (miniature world)
    scheduler_config: dict[str, Any]
    spec: ModelSpec = field(default_factory=ModelSpec)
    _fingerprint: str | None = field(default=None, repr=False)
    # (what it was compiled with, the compiled UNet): see compiled_unet
    _compiled_unet: Any = field(default=None, repr=False, compare=False)

    # -- construction ------------------------------------------------------------
    @classmethod
    def load(
        cls, model_id: str, revision: str | None = None, *,
        dtype: torch.dtype | None = torch.float32,
    ) -> DiffusionModel:
        """Loads a diffusers folder (by path) or a hub id at ``revision``; safetensors only.

        Weights are held in float32 by default whatever the file stores (erasers train in
        it; generation casts them per batch, :func:`erasebench.generate.weights_cast`);
        ``dtype=None`` keeps the file's.
        """
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        local = model_folder(model_id)
        folder = local is not None
        source = str(local.resolve()) if local is not None else model_id
        if not folder:
            check_hub_cache(model_id, revision)
        # A folder needs no hub; a hub id is read from the cache alone where the hub does
        # not answer (HF_HUB_OFFLINE read at call time: huggingface_hub reads it at import).
        unreachable = None if folder else hub_unreachable()
        offline = folder or unreachable is not None
        kwargs: dict[str, Any] = {"revision": revision, "local_files_only": offline}
        try:
            with _quiet_loading():
                tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kwargs)
                weights = {"use_safetensors": True, **kwargs}
                if dtype is not None:
                    weights["torch_dtype"] = dtype
                text_encoder = CLIPTextModel.from_pretrained(
                    source, subfolder="text_encoder", **weights)
                unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **weights)
                vae_class = _vae_class(source, revision, offline)
                vae = vae_class.from_pretrained(source, subfolder="vae", **weights)
                scheduler_config = _read_scheduler_config(source, revision, offline)
        except (OSError, ValueError) as error:
            cache_only = (f" Only the Hugging Face cache was read ({unreachable})."
                          if unreachable else "")
            raise UserError(
                f"could not load model {model_id!r} (revision {revision}): "
                f"{' '.join(str(error).split()).rstrip('.')}.{cache_only}"
                " Without network, download the diffusers folder elsewhere and pass its path "
                "as --model"
            ) from error
        model = cls(tokenizer, text_encoder, unet, vae, scheduler_config,
                    ModelSpec(id=model_id, revision=revision))
        return model.eval()

    @classmethod
    def tiny(cls, seed: int = 0, device: torch.device | str = "cpu") -> DiffusionModel:
        """A tiny random SD-shaped model built from config (32 px images, CPU in milliseconds).

        Its tokenizer is the real SD v1 tokenizer; everything else is small and random,
        seeded without touching the global RNG.
        """
        return cls._random(
            TINY_MODEL_ID, seed, device,
            unet=dict(block_out_channels=(16, 32), layers_per_block=1, sample_size=16,
                      in_channels=4, out_channels=4, norm_num_groups=8,
                      down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                      up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                      cross_attention_dim=32, attention_head_dim=4),
            vae=dict(block_out_channels=(16, 32), in_channels=3, out_channels=3,
                     norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2,
                     up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4),
            text=dict(width=32, layers=2, heads=4, intermediate=37))

    @classmethod
    def sd_v1_random(cls, seed: int = 0, device: torch.device | str = "cpu") -> DiffusionModel:
        """Stable Diffusion v1.4's architecture with random weights (same FLOPs and memory
        as the real model): for benchmarks and GPU tests without downloading weights."""
        return cls._random(
            SD_RANDOM_MODEL_ID, seed, device,
            # the UNet's other defaults are SD v1's
            unet=dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8),
            vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                     latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
                     up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512),
            text=dict(width=768, layers=12, heads=12, intermediate=3072))

    @classmethod
    def _random(cls, model_id: str, seed: int, device: torch.device | str,
                unet: dict[str, Any], vae: dict[str, Any], text: dict[str, int]
                ) -> DiffusionModel:
        """Random weights from config, seeded without touching the global RNG.

        The weights are drawn on ``device``: on CPU, torch's generator is serial, and SD's
        billion parameters take half a minute to draw; on a GPU they take a moment. So one
        seed gives other weights on a GPU than on CPU (the fingerprint tells them apart).
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel

        tokenizer = sd_tokenizer()
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        forked = [device.index] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=forked), device:
            torch.manual_seed(seed)
            parts = (UNet2DConditionModel(**unet), AutoencoderKL(**vae),
                     small_text_encoder(tokenizer, **text))
        return cls(tokenizer, parts[2], parts[0], parts[1], dict(SD_V1_SCHEDULER),
                   ModelSpec(id=model_id, revision=f"seed{seed}")).eval()

    # -- state ---------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in COMPONENTS}

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Parameters named ``component.path`` (e.g. ``unet.down_blocks.1...to_k.weight``)."""
        for component, module in self.modules().items():
            for name, parameter in module.named_parameters():
                yield f"{component}.{name}", parameter

    def parameter(self, qualified_name: str) -> nn.Parameter:
        component, _, name = qualified_name.partition(".")
        if component not in COMPONENTS:
            raise KeyError(f"{qualified_name!r} does not start with one of {COMPONENTS}")
        return self.modules()[component].get_parameter(name)

    def eval(self) -> DiffusionModel:
        for module in self.modules().values():
            module.eval().requires_grad_(False)
        return self

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> DiffusionModel:
        if dtype is not None:
            self._fingerprint = None  # a dtype change rounds the weights
        elif device is None or torch.device(device) == self.device:
            return self  # nothing to move (and diffusers warns on every .to call)
        for module in self.modules().values():
            module.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def vae_scale(self) -> int:
        """Image pixels per latent pixel along a side (8 for SD's VAE)."""
        factor = getattr(self.vae.config, "factor", None)  # a PixelShuffleAutoencoder
        if factor is not None:
            return int(factor)
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def native_size(self) -> int:
        """The image side the UNet was built for (512 for SD v1)."""
        return int(self.unet.config.sample_size) * self.vae_scale

    def compiled_unet(self, backend: Any = "inductor",
                      options: dict[str, Any] | None = None) -> Any:
        """The UNet under ``torch.compile``, made once per model and set of inductor
        ``options`` (compiling SD's UNet takes about a minute) and used for sampling only:
        erasers train the module itself.

        Correct under edits because dynamo treats the parameters of an inlined module as
        graph inputs: weights written in place (edits) or swapped for cast copies
        (:func:`erasebench.generate.weights_cast`) reach the compiled code without a
        recompile or a stale copy. Older torch baked them in as constants, hence the check.

        Shapes stay static (``dynamic=False``): a new batch size compiles a graph of its
        own instead of one with a symbolic batch, for which inductor gives up laying the
        convolutions out channels-last, much of what compiling gains on a GPU
        (``decide_layout_opt`` in torch/_inductor/graph.py); dynamo would make that graph
        on the second batch size it saw, and run it for every later batch not of the first.
        The generator therefore calls it with full batches only
        (:meth:`erasebench.generate.Generator._network`).
        """
        import torch._dynamo

        with warnings.catch_warnings():  # newer torch: always on, the flag deprecated
            warnings.simplefilter("ignore", FutureWarning)
            inlined = getattr(torch._dynamo.config, "inline_inbuilt_nn_modules", True)
        if not inlined:
            raise UserError("compiling the UNet needs torch >= 2.5 (dynamo's "
                            f"inline_inbuilt_nn_modules); this is torch {torch.__version__}")
        # diffusers asks `is_torch_version` (an lru_cache'd function) inside the UNet's
        # upsampling, which dynamo traces through with a warning of "potential silent
        # incorrectness". Exact here: the answer depends on the installed torch only.
        warnings.filterwarnings("ignore", message=_DIFFUSERS_VERSION_CHECK_WARNING,
                                category=UserWarning)
        made_for = (backend, sorted((options or {}).items()))
        if self._compiled_unet is None or self._compiled_unet[1]._orig_mod is not self.unet \
                or self._compiled_unet[0] != made_for:
            compiled = torch.compile(self.unet, backend=backend, options=options or None,
                                     dynamic=False)
            self._compiled_unet = (made_for, compiled)
        return self._compiled_unet[1]

    def discard_compiled_unet(self) -> None:
        """Forget the compiled UNet, and every graph dynamo holds: needed after the UNet's
        weights change layout (e.g. to channels_last), which torch 2.11 does not guard
        against: the old graph then fails on the new strides (2.14 recompiles)."""
        import torch._dynamo

        self._compiled_unet = None
        torch._dynamo.reset()

    # -- fingerprint -----------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """sha256 of every component's config and every weight (as float32 values)."""
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint()
        return self._fingerprint

    def _compute_fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps(_public(_full_scheduler_config(self.scheduler_config)),
                                 sort_keys=True, default=str).encode())
        for component, module in self.modules().items():
            config = getattr(module, "config", {})
            config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
            config = _public(config)
            digest.update(component.encode())
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
            for name, tensor in sorted(module.state_dict().items()):
                digest.update(f"{name}:{tuple(tensor.shape)}".encode())
                digest.update(tensor_bytes(tensor))
        return digest.hexdigest()

    def set_fingerprint(self, value: str | None) -> None:
        """Used by edits: the edited model's fingerprint is derived, not re-hashed."""
        self._fingerprint = value

    # -- text -------------------------------------------------------------------------
    def token_ids(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts), padding="max_length", truncation=True,
            max_length=self.tokenizer.model_max_length, return_tensors="pt",
        )
        return batch.input_ids

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """The UNet's conditioning: last hidden states, shape (len(texts), 77, dim)."""
        ids = self.token_ids(texts).to(self.text_encoder.device)
        return self.text_encoder(ids)[0]

    # -- export -----------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Writes a plain diffusers folder that ``StableDiffusionPipeline`` loads."""
        from diffusers import DDIMScheduler, StableDiffusionPipeline

        pipeline = StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
            unet=self.unet, scheduler=DDIMScheduler.from_config(self.scheduler_config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        with _quiet_loading():  # transformers' bar of one shard, in `export`'s output
            pipeline.save_pretrained(str(folder), safe_serialization=True)  # type: ignore[attr-defined]
        return Path(folder)


def small_text_encoder(tokenizer: Any, width: int, layers: int, heads: int,
                       intermediate: int) -> Any:
    """A freshly initialised CLIP text encoder for the SD tokenizer (77 positions)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=intermediate,
        num_attention_heads=heads, num_hidden_layers=layers, max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ))


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Silences the libraries' per-load chatter (the 'install accelerate' advice, weight
    loading bars, huggingface_hub's warning of an argument diffusers still passes it when
    loading a hub id) that would otherwise repeat in every run's output; errors still
    raise."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    levels = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The `local_dir_use_symlinks` argument is "
                                    "deprecated", UserWarning)
            yield
    finally:
        diffusers_logging.set_verbosity(levels[0])
        transformers_logging.set_verbosity(levels[1])
        if bars:
            transformers_logging.enable_progress_bar()


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The float32 bytes of a tensor (so that the hash does not depend on the device)."""
    value = tensor.detach().to("cpu")
    if value.is_floating_point():
        value = value.float()
    return memoryview(value.contiguous().numpy()).cast("B")  # type: ignore[arg-type]


def _public(config: dict[str, Any]) -> dict[str, Any]:
    """Config without bookkeeping keys (paths, versions) that do not change the model."""
    volatile = ("transformers_version", "torch_dtype", "dtype", "architectures")
    return {k: v for k, v in config.items() if not k.startswith("_") and k not in volatile}


def _full_scheduler_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config with every default written out, so a saved and reloaded one hashes equal."""
    from diffusers import DDIMScheduler

    return dict(DDIMScheduler.from_config(config).config)


def _vae_class(source: str, revision: str | None, offline: bool) -> Any:
    """SD's AutoencoderKL, or the exact pixel decoder of small pixel-space models."""
    from diffusers import AutoencoderKL

    from erasebench.pixel_decoder import PixelShuffleAutoencoder

    config = AutoencoderKL.load_config(source, subfolder="vae", revision=revision,
                                       local_files_only=offline)
    if config.get("_class_name") == PixelShuffleAutoencoder.__name__:
        return PixelShuffleAutoencoder
    return AutoencoderKL


def _read_scheduler_config(source: str, revision: str | None, offline: bool) -> dict[str, Any]:
    from diffusers import DDIMScheduler

    config = DDIMScheduler.load_config(source, subfolder="scheduler", revision=revision,
                                       local_files_only=offline)
    return dict(config)


def model_path(model_id: str) -> Path | None:
    """The folder ``model_id`` names, whether or not it exists, or None where it is a hub
    id ("namespace/name" that names no folder here)."""
    local = Path(model_id).expanduser()
    if local.exists() or local.is_absolute() or model_id.startswith((".", "~")) \
            or model_id.count("/") > 1:
        return local
    return None


def model_folder(model_id: str) -> Path | None:
    """The diffusers folder ``model_id`` names, checked for the files a run reads of it
    (:func:`erasebench.model_files.missing_from_folder`), or None where it is a hub id; a
    UserError says what is wrong with a folder, or that a path names none."""
    local = model_path(model_id)
    if local is None:
        return None
    if local.exists():
        if not (local / FOLDER_MARK).is_file():
            raise UserError(
                f"model path {str(local)!r} is not a diffusers folder (no {FOLDER_MARK});"
                " pass a folder written by save_pretrained or a hub id"
            )
        lacking = missing_from_folder(local)
        if lacking:
            raise UserError(f"model folder {str(local)!r} lacks {'; '.join(lacking)}")
        return local
    # A path, not a hub id: the hub's own error would say only that the id is malformed.
    raise UserError(f"model folder {model_id!r} does not exist; pass a diffusers "
                    "folder or a hub id (e.g. CompVis/stable-diffusion-v1-4)")


def check_hub_cache(model_id: str, revision: str | None = None) -> None:
    """A UserError naming the files a run reads of the hub model ``model_id`` that the
    Hugging Face cache lacks, where only the cache can be read (``HF_HUB_OFFLINE`` set, or
    the hub not answering: :func:`erasebench.hub.hub_unreachable`); the hub is asked only
    where the cache lacks some. Where it answers, a run downloads them."""
    lacking, reads = missing_from_cache(model_id, revision)
    unreachable = hub_unreachable() if lacking else None
    if unreachable is None:
        return
    shown = ", ".join(lacking[:3]) + (f" and {len(lacking) - 3} more" if len(lacking) > 3
                                       else "")
    # `weights --download` fetches exactly what a run reads, in the layout the repository
    # has, but at main only; a revision's are named for huggingface_hub's command.
    fetch = (download_line(model_id, lacking, revision) if revision
             else f"erasebench weights --model {model_id} --download")
    at = f" at revision {revision!r}" if revision else ""
    raise UserError(
        f"model {model_id!r}{at}: only the Hugging Face cache can be read ({unreachable}), "
        f"and it lacks {len(lacking)} of the {reads} files a run reads ({shown}); `{fetch}` "
        "fetches them where there is network; without network, download the diffusers "
        "folder elsewhere and pass its path as --model")


def load_model(spec: ModelSpec, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> DiffusionModel:
    """Resolves a ModelSpec: ``tiny`` or ``sd-v1-random`` (random weights, optionally
    revision ``seedN``, drawn on ``device``), ``shapes`` (the miniature world's committed
    model) or a hub id / diffusers folder; the model is returned on ``device`` (default CPU)."""
    if spec.id in (TINY_MODEL_ID, SD_RANDOM_MODEL_ID):
        seed = int((spec.revision or "seed0").removeprefix("seed") or 0)
        build = DiffusionModel.tiny if spec.id == TINY_MODEL_ID else DiffusionModel.sd_v1_random
        model = build(seed, device or "cpu")
        return model.to(dtype=dtype) if dtype is not None else model
    return _load_stored(spec, dtype).to(device)


def _load_stored(spec: ModelSpec, dtype: torch.dtype | None) -> DiffusionModel:
    if spec.id == SHAPES_MODEL_ID:
        from erasebench.tasks.shapes.model import MODEL_FOLDER

        model = DiffusionModel.load(str(MODEL_FOLDER), dtype=dtype or torch.float32)
        model.spec = spec
        return model
    return DiffusionModel.load(spec.id, spec.revision, dtype=dtype or torch.float32)
