"""Shared fixtures: the tiny random model (built once) and a cache outside the user's home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

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
