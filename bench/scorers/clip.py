"""CLIP score through open_clip, with OpenAI's weights and QuickGELU.

``ViT-B-32-quickgelu`` is what AP/AGE's artist table and MACE's COCO numbers used
(``openai/clip-vit-base-patch32`` in torchmetrics / transformers), ``ViT-L-14-quickgelu``
what AP's concept-sensitivity figure used. QuickGELU matters: OpenAI trained with it, and
open_clip's plain ``ViT-B-32`` with the OpenAI weights silently runs GELU instead.

Score of an image and a text = ``100 * max(cos, 0)`` of their embeddings, torchmetrics'
``CLIPScore`` computed image by image, as the papers called it.

Weights are read as safetensors only: the OpenAI checkpoints as open_clip publishes them on
the Hugging Face hub (``timm/vit_base_patch32_clip_224.openai``,
``open_clip_model.safetensors``), from the Hugging Face cache, or an explicit file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from erasebench.errors import UnknownNameError
from erasebench.hub import hub_download_command, hub_unreachable
from erasebench.memory import in_fitting_batches
from erasebench.scorers.weights import WeightFile, file_digest, torch_hub_file

SAFETENSORS_NAME = "open_clip_model.safetensors"
# A two-layer CLIP with the real tokenizer, for tests and the contract suite: with random
# weights it exercises the whole loading and scoring path in milliseconds.
TINY_ARCHITECTURE = "erasebench-tiny-clip"


def register_tiny_architecture() -> None:
    import open_clip

    if TINY_ARCHITECTURE not in open_clip.list_models():
        open_clip.add_model_config(Path(__file__).with_name(f"{TINY_ARCHITECTURE}.json"))


def hub_repo(architecture: str) -> str:
    """The Hugging Face repo open_clip fetches ``architecture``'s OpenAI weights from."""
    from open_clip.pretrained import get_pretrained_cfg

    return str(get_pretrained_cfg(architecture, "openai")["hf_hub"]).rstrip("/")


def _fetch_from_hub(repo: str) -> Callable[[Path], Path]:
    def fetch(path: Path) -> Path:
        from huggingface_hub import hf_hub_download

        # Asked without network, huggingface_hub retries with back-off for ~25 s.
        unreachable = hub_unreachable()
        if unreachable:
            raise ConnectionError(unreachable)
        return Path(hf_hub_download(repo, SAFETENSORS_NAME))

    return fetch


def clip_weight_file(architecture: str, weights_path: str | Path | None = None) -> WeightFile:
    """The weight file of ``architecture``: ``weights_path`` if given; else, for an
    architecture with OpenAI weights, the file in the Hugging Face cache (where
    ``huggingface_hub`` downloads it); else
    ``$TORCH_HOME/hub/checkpoints/<architecture>.safetensors``."""
    if weights_path is not None:
        return WeightFile(scorer=f"CLIP {architecture}", path=Path(weights_path),
                          source="an open_clip state dict in safetensors",
                          where="the path given", option="clip_weights")
    from open_clip.pretrained import get_pretrained_cfg

    if not get_pretrained_cfg(architecture, "openai").get("hf_hub"):
        return WeightFile(scorer=f"CLIP {architecture}",
                          path=torch_hub_file(f"{architecture}.safetensors"),
                          source="an open_clip state dict of this architecture in safetensors",
                          where="$TORCH_HOME/hub/checkpoints/", option="clip_weights")
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    repo = hub_repo(architecture)
    cached = try_to_load_from_cache(repo, SAFETENSORS_NAME)
    folder = Path(HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
    path = Path(cached) if isinstance(cached, str) else \
        folder / "snapshots" / "<commit>" / SAFETENSORS_NAME
    return WeightFile(
        scorer=f"CLIP {architecture}", path=path,
        source=f"https://huggingface.co/{repo}/blob/main/{SAFETENSORS_NAME}",
        where=f"the Hugging Face cache, {folder}; `{hub_download_command()} {repo} "
              f"{SAFETENSORS_NAME}` puts it there", option="clip_weights",
        fetch=_fetch_from_hub(repo))


class ClipScorer:
    """Batched CLIP embeddings and scores of PIL images against texts."""

    def __init__(self, architecture: str = "ViT-B-32-quickgelu", device: str = "cpu",
                 weights_path: str | Path | None = None, batch_size: int = 64) -> None:
        import open_clip

        register_tiny_architecture()
        if architecture not in open_clip.list_models():
            raise UnknownNameError("open_clip architecture", architecture,
                                   open_clip.list_models())
        self.architecture, self.device, self.batch_size = architecture, device, batch_size
        self.weight_file = clip_weight_file(architecture, weights_path)
        self.path: Path | None = None  # the file actually loaded
        self._loaded: tuple[torch.nn.Module, Callable[..., torch.Tensor], object] | None = None

    def _load(self) -> tuple[torch.nn.Module, Callable[..., torch.Tensor], object]:
        if self._loaded is None:
            import open_clip

            self.path = self.weight_file.ensure()
            # The path goes through open_clip's own checkpoint loader (safetensors by suffix).
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.architecture, pretrained=str(self.path), device=self.device)
            self._loaded = (model.eval().requires_grad_(False), preprocess,
                            open_clip.get_tokenizer(self.architecture))
        return self._loaded

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(n, dim) unit-norm image embeddings, in batches halved out of device memory
        (``erasebench.memory.in_fitting_batches``), as the texts'."""
        model, preprocess, _ = self._load()

        def embeddings(part: slice) -> torch.Tensor:
            batch = torch.stack([preprocess(image.convert("RGB")) for image in images[part]])
            return model.encode_image(batch.to(self.device)).float()  # type: ignore[operator,no-any-return]

        chunks, self.batch_size = in_fitting_batches(len(images), self.batch_size, embeddings)
        return _unit(torch.cat(chunks)).cpu()

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, dim) unit-norm text embeddings (CLIP's 77-token context, truncated)."""
        model, _, tokenizer = self._load()

        def embeddings(part: slice) -> torch.Tensor:
            tokens = tokenizer(list(texts[part]))  # type: ignore[operator]
            return model.encode_text(tokens.to(self.device)).float()  # type: ignore[operator,no-any-return]

        chunks, self.batch_size = in_fitting_batches(len(texts), self.batch_size, embeddings)
        return _unit(torch.cat(chunks)).cpu()

    def scores(self, images: Sequence[Image.Image], texts: Sequence[str]) -> torch.Tensor:
        """(n,) CLIP score of image i against text i: 100 * max(cos, 0)."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        if not images:
            return torch.zeros(0)
        cos = (self.image_embeddings(images) * self.text_embeddings(texts)).sum(dim=1)
        return 100.0 * cos.clamp(min=0.0)

    def version(self) -> str:
        import open_clip

        weights = f"sha256:{file_digest(self.path)}" if self.path else self.weight_file.version()
        return f"open_clip {open_clip.__version__} {self.architecture} {weights}"


def _unit(features: torch.Tensor) -> torch.Tensor:
    return features / features.norm(dim=-1, keepdim=True)
