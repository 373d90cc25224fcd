"""Shared fixtures: the tiny random model (built once) and a cache outside the user's home."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image

from erasebench.cache import ImageCache
from erasebench.image_sequences import CachedImages
from erasebench.models import DiffusionModel
from erasebench.testing import write_random_scorer_weights


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _cache_outside_home(tmp_path_factory: pytest.TempPathFactory,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write to ~/.cache; tests that check caching pass their own tmp folder."""
    monkeypatch.setenv("ERASEBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_model_session() -> DiffusionModel:
    return DiffusionModel.tiny()


@pytest.fixture
def tiny(tiny_model_session: DiffusionModel) -> Iterator[DiffusionModel]:
    """The session's tiny model; a test must leave it as it found it (checked afterwards)."""
    fingerprint = tiny_model_session.fingerprint
    yield tiny_model_session
    tiny_model_session.set_fingerprint(None)
    assert tiny_model_session.fingerprint == fingerprint, "a test left the tiny model edited"


@pytest.fixture(scope="session")
def random_scorer_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TORCH_HOME holding random weights for every scorer (written once per session)."""
    home = tmp_path_factory.mktemp("torch_home")
    write_random_scorer_weights(home)
    return home


@pytest.fixture
def scorer_home(random_scorer_weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Scorers load their (random) weights through their real code path, offline."""
    monkeypatch.setenv("TORCH_HOME", str(random_scorer_weights))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return random_scorer_weights


@pytest.fixture
def as_cached(tmp_path: Path) -> Callable[[Sequence[Image.Image]], tuple[CachedImages, list[int]]]:
    """``as_cached(images)``: the images written to a fresh image cache and handed back as the
    runner hands them to scorers (:class:`CachedImages`), with the list of how many images
    each read decoded, to check that a scorer reads a batch at a time."""

    def write(images: Sequence[Image.Image]) -> tuple[CachedImages, list[int]]:
        cache = ImageCache(tmp_path / f"as_cached_{len(list(tmp_path.iterdir()))}")
        keys = [f"{index:064x}" for index in range(len(images))]
        for key, image in zip(keys, images, strict=True):
            cache.put(key, image, {})
        cached, reads = CachedImages(cache, keys), []
        read = cached._read
        cached._read = lambda wanted: reads.append(len(wanted)) or read(wanted)  # type: ignore[method-assign]
        return cached, reads

    return write
