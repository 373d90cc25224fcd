"""FID: the real torch-fidelity Inception file (random weights), reference statistics
cached and reused, and the same value as torchmetrics fed both sets directly."""

import numpy as np
import pytest
import torch
from PIL import Image

from erasebench.errors import UserError
from erasebench.scorers.fid import FrechetDistance


def _images(count, seed, size=(48, 48)):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
            for _ in range(count)]


def test_cached_reference_statistics_give_torchmetrics_fid(scorer_home, tmp_path):
    from torchmetrics.image.fid import FrechetInceptionDistance

    reference = tmp_path / "reference"
    reference.mkdir()
    real = _images(3, 0) + _images(3, 1, size=(64, 40))  # two sizes, as real photos have
    for i, image in enumerate(real):
        image.save(reference / f"{i}.png")
    generated = _images(5, 2)
    scorer = FrechetDistance(batch_size=4, cache_dir=tmp_path / "cache")
    value = scorer.fid(generated, reference)

    metric = FrechetInceptionDistance(
        feature=2048, feature_extractor_weights_path=str(scorer.weight_file.path))
    for image in real:
        metric.update(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None], real=True)
    metric.update(torch.stack([torch.from_numpy(np.array(i)).permute(2, 0, 1)
                               for i in generated]), real=False)
    assert value == pytest.approx(float(metric.compute()), rel=1e-4)
    assert value > 0

    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    _images(1, 3)[0].save(reference / "new.png")  # a changed folder gets new statistics
    assert scorer.fid(generated, reference) != value
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2


def test_reference_statistics_are_reused(scorer_home, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    reference.mkdir()
    for i, image in enumerate(_images(3, 0)):
        image.save(reference / f"{i}.png")
    scorer = FrechetDistance(cache_dir=tmp_path / "cache")
    first = scorer.fid(_images(3, 2), reference)
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("reference images re-read"))
    assert scorer.fid(_images(3, 2), reference) == first


def test_bad_reference_folders_are_clear_errors(tmp_path):
    scorer = FrechetDistance(cache_dir=tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        scorer.reference_statistics(tmp_path / "nowhere")
    (tmp_path / "one").mkdir()
    _images(1, 0)[0].save(tmp_path / "one" / "a.png")
    with pytest.raises(UserError, match="at least 2 reference images"):
        scorer.reference_statistics(tmp_path / "one")


def test_cached_images_are_read_a_batch_at_a_time_with_the_same_value(scorer_home, tmp_path,
                                                                      as_cached):
    scorer = FrechetDistance(batch_size=3, cache_dir=tmp_path / "cache")
    generated, references = _images(7, 2), _images(5, 0)
    expected = scorer.fid_between(generated, references)
    cached_generated, generated_reads = as_cached(generated)
    cached_references, reference_reads = as_cached(references)
    assert scorer.fid_between(cached_generated, cached_references) == \
        pytest.approx(expected, rel=1e-6)
    assert generated_reads == [3, 3, 1] and reference_reads == [3, 2]
