"""FID via torchmetrics (``FrechetInceptionDistance``, 2048-d pool features of torch-fidelity's
Inception v3, the TF-FID port), against a folder of reference images.

The Inception weights are torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` in
``$TORCH_HOME/hub/checkpoints`` (where torch-fidelity downloads them) or an explicit path.
Reference statistics (feature sum, outer-product sum, count: the metric's own states) are
computed once per reference folder and Inception file and cached as safetensors under the
erasebench cache; the key is the folder's listing (names, sizes, modification times), so
changing a file there recomputes them.

MACE/SPM/RECE used clean-fid ("clean" resizing) instead; values differ by a small offset,
so numbers are only comparable within one implementation (recorded as the scorer version).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from erasebench.cache import default_cache_dir
from erasebench.errors import UserError
from erasebench.io import atomic_write
from erasebench.memory import in_fitting_batches
from erasebench.scorers.weights import WeightFile, file_digest

INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_REAL_STATES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")


def reference_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"FID reference folder {folder} does not exist; give a folder of real "
                        "images (e.g. the COCO val2014 images of the captions used)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise UserError(f"FID needs at least 2 reference images; {folder} has {len(files)} "
                        f"(suffixes read: {', '.join(IMAGE_SUFFIXES)})")
    return files


def listing_key(files: Sequence[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            _set_env(name, value)
        yield
    finally:
        for name, value in saved.items():
            _set_env(name, value)


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _uint8_batch(images: Sequence[Image.Image]) -> torch.Tensor:
    arrays = np.stack([np.asarray(image.convert("RGB")) for image in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()


class FrechetDistance:
    """FID of generated images against a reference folder, reference statistics cached."""

    def __init__(self, device: str = "cpu", weights_path: str | Path | None = None,
                 batch_size: int = 50, cache_dir: str | Path | None = None) -> None:
        self.device, self.batch_size = device, batch_size
        self.weight_file = WeightFile.torch_hub("FID Inception v3", INCEPTION_URL,
                                                "fid_weights", weights_path)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "fid"

    def metric(self) -> Any:
        from torchmetrics.image.fid import FrechetInceptionDistance

        path = str(self.weight_file.ensure())
        # torch-fidelity reads the file with weights_only=False (torch's loader), i.e. it would
        # unpickle anything; torch's switch forces the tensors-only loader for this call.
        with _environment(TORCH_FORCE_WEIGHTS_ONLY_LOAD="1", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=None):
            metric = FrechetInceptionDistance(feature=2048, reset_real_features=False,
                                              feature_extractor_weights_path=path)
        return metric.to(self.device)

    def _update(self, metric: Any, images: Sequence[Image.Image], real: bool) -> None:
        # A batch at a time, so that only one is ever decoded (a run's images are read from
        # the cache as they are used). Inception resizes every image to 299 itself; a batch
        # only needs one size, so a batch of images of different sizes (real COCO photos)
        # goes in groups of equal size, each in parts halved out of device memory
        # (erasebench.memory.in_fitting_batches). A part mostly runs out of memory in
        # Inception, before the metric adds its features to its sums; but the metric adds
        # their sum before it allocates their product (32 MB), which on a GPU other
        # processes share may not fit either: the part's states are put back as they were,
        # so that trying it again counts its images once.
        def update(group: list[Image.Image]) -> int:
            """The group's features added to the metric; the batch size that fit."""
            def add(part: slice) -> None:
                states = {name: state.clone() for name, state in metric.metric_state.items()}
                try:
                    metric.update(_uint8_batch(group[part]).to(self.device), real=real)
                except torch.OutOfMemoryError:
                    for name, state in states.items():
                        setattr(metric, name, state)
                    raise

            return in_fitting_batches(len(group), self.batch_size, add)[1]

        start = 0
        while start < len(images):
            by_size: dict[tuple[int, int], list[Image.Image]] = defaultdict(list)
            for image in images[start : start + self.batch_size]:
                by_size[image.size].append(image)
            start += self.batch_size
            for group in by_size.values():
                self.batch_size = update(group)

    @torch.no_grad()
    def reference_statistics(self, folder: str | Path) -> dict[str, torch.Tensor]:
        """The metric's real-image states for ``folder``, from the cache when present."""
        files = reference_files(folder)
        key = f"{listing_key(files, Path(folder))}-{file_digest(self.weight_file.ensure())}"
        cached = self.cache_dir / f"{key}.safetensors"
        if cached.is_file():
            return load_file(cached)
        metric = self.metric()
        for start in range(0, len(files), self.batch_size):
            chunk = [Image.open(path) for path in files[start : start + self.batch_size]]
            self._update(metric, chunk, real=True)
        states = {name: getattr(metric, name).cpu() for name in _REAL_STATES}
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(cached, lambda tmp: save_file(states, str(tmp)))
        return states

    @torch.no_grad()
    def fid(self, images: Sequence[Image.Image], reference_folder: str | Path) -> float:
        if len(images) < 2:
            raise UserError(f"FID needs at least 2 generated images, got {len(images)}")
        metric = self.metric()
        for name, value in self.reference_statistics(reference_folder).items():
            setattr(metric, name, value.to(self.device))
        self._update(metric, images, real=False)
        return float(metric.compute())

    @torch.no_grad()
    def fid_between(self, images: Sequence[Image.Image],
                    references: Sequence[Image.Image]) -> float:
        """FID of ``images`` to other generated images (e.g. the original model's)."""
        if min(len(images), len(references)) < 2:
            raise UserError("FID needs at least 2 images on each side, got "
                            f"{len(images)} and {len(references)}")
        metric = self.metric()
        self._update(metric, references, real=True)
        self._update(metric, images, real=False)
        return float(metric.compute())

    def version(self) -> str:
        from importlib.metadata import version

        return f"torchmetrics {version('torchmetrics')} FID-2048 torch-fidelity " \
               f"{version('torch-fidelity')} inception {self.weight_file.version()}"
