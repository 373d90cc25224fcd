"""The real ResNet-50 loading path, on a weight file the test writes where torch hub keeps it."""

import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from erasebench.errors import UnknownNameError, UserError
from erasebench.scorers.imagenet import ImageNetClassifier, default_weights_path


@pytest.fixture(scope="module")
def random_resnet(tmp_path_factory):
    """Random ResNet-50 weights saved in torchvision's format under a fresh TORCH_HOME."""
    from torchvision.models import resnet50

    home = tmp_path_factory.mktemp("torch_home")
    torch.manual_seed(0)
    network = resnet50().eval()
    path = home / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    path.parent.mkdir(parents=True)
    torch.save(network.state_dict(), path)
    return home, network


def _images(count=3, size=96):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
            for _ in range(count)]


def test_loads_from_torch_home_and_matches_torchvision(random_resnet, monkeypatch):
    from torchvision.models import ResNet50_Weights

    home, network = random_resnet
    monkeypatch.setenv("TORCH_HOME", str(home))
    classifier = ImageNetClassifier(batch_size=2)  # batches of 2 over 3 images
    assert classifier.path == default_weights_path() and classifier.path.is_file()
    images = _images()
    logits = classifier.logits(images)
    transform = ResNet50_Weights.IMAGENET1K_V2.transforms()
    with torch.no_grad():
        expected = network(torch.stack([transform(image) for image in images]))
    assert logits.shape == (3, 1000)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert "IMAGENET1K_V2" in classifier.version() and "sha256:" in classifier.version()


def test_labels_match_like_the_papers():
    classifier = ImageNetClassifier()
    assert classifier.class_index("Garbage Truck") == 569
    assert classifier.class_index("tench") == 0
    with pytest.raises(UserError, match="not an ImageNet category"):
        classifier.class_index("Unicorn")


def test_a_missing_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, dst, progress=True):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    classifier = ImageNetClassifier("IMAGENET1K_V1")
    with pytest.raises(UserError) as caught:
        classifier.logits(_images(1))
    message = str(caught.value)
    assert "resnet50-0676ba61.pth" in message and str(tmp_path) in message
    assert "TORCH_HOME" in message and "download.pytorch.org" in message


def test_unknown_weights_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="IMAGENET1K_V1"):
        ImageNetClassifier("IMAGENET1K_V3")
