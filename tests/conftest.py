"""Shared fixtures: the tiny random model (built once) and a cache outside the user's home."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

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


@pytest.fixture
def make_record() -> Callable[..., Any]:
    """``make_record(eraser, concept, edit=..., timings=..., steps=..., images=...,
    metrics=...)``: a run record of the mock task on the tiny model, as the runner would
    write one."""
    from erasebench.results import MetricRow, RunRecord, UnitTimings, provenance
    from erasebench.specs import (
        EraserSpec,
        ErasureRequest,
        GenerationSpec,
        ModelSpec,
        RunSpec,
        TaskSpec,
    )

    def make(eraser: str = "sd", concept: str = "cat", *, edit: str = "d",
             timings: UnitTimings | None = None, steps: int = 2, images: int = 4,
             metrics: list[MetricRow] | None = None) -> RunRecord:
        spec = RunSpec(eraser=EraserSpec(name=eraser),
                       request=ErasureRequest(concepts=(concept,)), task=TaskSpec(name="mock"),
                       model=ModelSpec(id="tiny"), generation=GenerationSpec(steps=steps))
        return RunRecord(run_id=spec.run_id(), spec=spec, task_version="1",
                         model_fingerprint="f", edit_digest=edit, image_count=images,
                         provenance=provenance("cpu", timings),
                         metrics=metrics or [MetricRow(metric="m", value=1.0,
                                                       higher_is_better=True)])

    return make


@pytest.fixture
def attacks_made(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The radius of every recovery attack optimised from here on (the robustness task's;
    those read from the attack cache are not)."""
    from erasebench.tasks.robustness import recovery

    made: list[float] = []
    optimised = recovery._optimised

    def counted(probe: Any, texts: Any, references: Any, radius: float, settings: Any,
                passes: Any) -> Any:
        made.append(radius)
        return optimised(probe, texts, references, radius, settings, passes)

    monkeypatch.setattr(recovery, "_optimised", counted)
    return made
