"""LPIPS: our loading of torchvision's AlexNet file into lpips' network gives torchmetrics'
LPIPS (an independent implementation reading the same file) on the same images."""

import numpy as np
import pytest
import torch
from PIL import Image

from erasebench.errors import UserError
from erasebench.scorers.perceptual import PerceptualDistance, to_lpips_tensor


def _images(count, seed, size=(64, 48)):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
            for _ in range(count)]


def test_matches_torchmetrics_at_full_resolution(scorer_home):
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    first, second = _images(3, 0), _images(3, 1)
    ours = PerceptualDistance(batch_size=2).distances(first, second)
    reference = LearnedPerceptualImagePatchSimilarity("alex", reduction="sum", normalize=False)
    expected = torch.stack([
        reference(to_lpips_tensor(a)[None], to_lpips_tensor(b)[None]).detach()
        for a, b in zip(first, second, strict=True)])
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    assert (ours > 0).all()
    same = PerceptualDistance().distances(first, first)
    torch.testing.assert_close(same, torch.zeros(3), atol=1e-6, rtol=0)


def test_lpips_input_scaling_is_lpips_im2tensor():
    image = Image.fromarray(np.array([[[0, 255, 127]]], dtype=np.uint8))
    torch.testing.assert_close(to_lpips_tensor(image).flatten(),
                               torch.tensor([-1.0, 1.0, 127 / 127.5 - 1]))


def test_a_missing_backbone_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(UserError, match="alexnet-owt-7be5be79.pth.*lpips_weights"):
        PerceptualDistance().distances(_images(1, 0), _images(1, 1))
