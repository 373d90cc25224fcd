"""LPIPS (AlexNet, v0.1) at full resolution, as AP/AGE's artist table computed it.

The linear heads ship inside the ``lpips`` package; the AlexNet backbone is torchvision's
ImageNet checkpoint (``alexnet-owt-7be5be79.pth`` in ``$TORCH_HOME/hub/checkpoints``),
read here with ``weights_only=True`` instead of through ``lpips``' own download. Images go
in at their own size, scaled to [-1, 1] as ``lpips.im2tensor`` does (ESD's script resized
to 64 px first; that variant is not offered because it measures something else).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from erasebench.memory import in_fitting_batches
from erasebench.scorers.weights import WeightFile, file_digest

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


def heads_file() -> Path:
    import lpips

    return Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"


def to_lpips_tensor(image: Image.Image) -> torch.Tensor:
    """(3, h, w) in [-1, 1], like ``lpips.im2tensor(lpips.load_image(path))``."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array / 127.5 - 1.0).permute(2, 0, 1)


class PerceptualDistance:
    """Batched LPIPS between pairs of same-sized PIL images; loads on first use."""

    def __init__(self, device: str = "cpu", backbone_path: str | Path | None = None,
                 batch_size: int = 16) -> None:
        self.device, self.batch_size = device, batch_size
        self.weight_file = WeightFile.torch_hub("LPIPS AlexNet backbone", ALEXNET_URL,
                                                "lpips_weights", backbone_path)
        self._model: torch.nn.Module | None = None

    def model(self) -> torch.nn.Module:
        if self._model is None:
            import lpips

            # pnet_rand: build the backbone without lpips' own download; it is loaded below.
            with warnings.catch_warnings():  # lpips calls torchvision's deprecated API
                warnings.simplefilter("ignore", UserWarning)
                model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True,
                                    verbose=False)
            path = self.weight_file.ensure()
            backbone = torch.load(path, map_location="cpu", weights_only=True)
            # lpips keeps torchvision's feature indices inside its slices: slice1.0 = features.0
            features = {key: backbone[f"features.{key.split('.', 1)[1]}"]
                        for key in model.net.state_dict()}
            model.net.load_state_dict(features)
            self._model = model.to(self.device).eval().requires_grad_(False)
        return self._model

    @torch.no_grad()
    def distances(self, images: Sequence[Image.Image],
                  references: Sequence[Image.Image]) -> torch.Tensor:
        """(n,) LPIPS between image i and reference i."""
        if len(images) != len(references):
            raise ValueError(f"{len(images)} images but {len(references)} references")
        model = self.model()

        def batch_distances(part: slice) -> torch.Tensor:
            first = torch.stack([to_lpips_tensor(image) for image in images[part]])
            second = torch.stack([to_lpips_tensor(image) for image in references[part]])
            return model(first.to(self.device), second.to(self.device)).flatten().cpu()

        # halved out of device memory (erasebench.memory.in_fitting_batches)
        chunks, self.batch_size = in_fitting_batches(len(images), self.batch_size,
                                                     batch_distances)
        return torch.cat(chunks) if chunks else torch.zeros(0)

    def version(self) -> str:
        from importlib.metadata import version

        return f"lpips {version('lpips')} alex v0.1 heads sha256:{file_digest(heads_file())} " \
               f"backbone {self.weight_file.version()}"
