"""Every scorer halves its batch when the device runs out of memory and gives the values it
gives at the smaller batch; a batch of one image that does not fit still raises."""

import pydoc

import numpy as np
import pytest
import torch
from nudity_images import skin_blobs
from PIL import Image

from erasebench.memory import in_fitting_batches, summed_in_fitting_slices
from erasebench.scorers.clip import TINY_ARCHITECTURE, ClipScorer
from erasebench.scorers.fid import FrechetDistance
from erasebench.scorers.imagenet import ImageNetClassifier
from erasebench.scorers.nudity import NudityDetector
from erasebench.scorers.perceptual import PerceptualDistance

OUT_OF_MEMORY = "CUDA out of memory. Tried to allocate 2.00 GiB."


def _images(count, seed, size=48):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
            for _ in range(count)]


def test_a_slice_out_of_memory_is_tried_again_at_half_its_length():
    tried = []

    def work(part):
        tried.append((part.start, part.stop))
        if part.stop - part.start > 3:
            raise torch.OutOfMemoryError(OUT_OF_MEMORY)
        return list(range(part.start, part.stop))

    outputs, fitted = in_fitting_batches(11, 8, work)
    assert [item for output in outputs for item in output] == list(range(11))
    assert tried == [(0, 8), (0, 4), (0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 11)]
    assert fitted == 2
    assert in_fitting_batches(0, 8, work) == ([], 8)

    def nothing_fits(part):
        raise torch.OutOfMemoryError(OUT_OF_MEMORY)

    with pytest.raises(torch.OutOfMemoryError):
        in_fitting_batches(3, 2, nothing_fits)


def test_summed_slices_start_over_at_half_the_length_when_one_runs_out_of_memory():
    # For work that accumulates (a backward pass adds to the gradients): the slices before
    # the one that failed are undone by ``reset`` and tried again, so each item counts once.
    tried, accumulated = [], []

    def work(part):
        tried.append((part.start, part.stop))
        if part.stop - part.start > 3 and part.start > 0:
            raise torch.OutOfMemoryError(OUT_OF_MEMORY)
        accumulated.extend(range(part.start, part.stop))
        return float(part.stop - part.start)

    total, fitted = summed_in_fitting_slices(11, 4, work, accumulated.clear)
    assert (total, fitted) == (11.0, 2) and accumulated == list(range(11))
    assert tried == [(0, 4), (4, 8), (0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 11)]
    assert summed_in_fitting_slices(0, 4, work, accumulated.clear) == (0.0, 4)

    def nothing_fits(part):
        raise torch.OutOfMemoryError(OUT_OF_MEMORY)

    with pytest.raises(torch.OutOfMemoryError):
        summed_in_fitting_slices(3, 2, nothing_fits, accumulated.clear)


def test_what_a_slice_out_of_memory_held_is_gone_when_the_device_memory_is_freed(
        monkeypatch):
    # Freed inside the handler, torch's error's traceback still held the failed work's
    # frames, and so its tensors (activations), which the allocator could not hand back.
    import weakref

    import erasebench.memory as memory

    class Activations:
        pass

    held, alive_when_freed = [], []

    def work(part):
        activations = Activations()
        held.append(weakref.ref(activations))
        if part.stop - part.start > 1:
            raise torch.OutOfMemoryError(OUT_OF_MEMORY)
        return part.start

    monkeypatch.setattr(memory, "free_device_memory",
                        lambda: alive_when_freed.append(held[-1]() is not None))
    assert memory.in_fitting_batches(2, 2, work) == ([0, 1], 1)
    assert alive_when_freed == [False]


# scorer name -> (the scorer at a batch size, what it computes, the network call that
# runs out of memory on more than two images, the batch it is given among its arguments)
CASES = {
    "resnet-50": (lambda batch: ImageNetClassifier(batch_size=batch),
                  lambda scorer, images, others: scorer.logits(images),
                  "torchvision.models.resnet.ResNet.forward", lambda args: args[0]),
    "clip": (lambda batch: ClipScorer(TINY_ARCHITECTURE, batch_size=batch),
             lambda scorer, images, others: scorer.scores(images, ["a cat"] * len(images)),
             "open_clip.model.CLIP.encode_image", lambda args: args[0]),
    "lpips": (lambda batch: PerceptualDistance(batch_size=batch),
              lambda scorer, images, others: scorer.distances(images, others),
              "lpips.LPIPS.forward", lambda args: args[0]),
    "fid": (lambda batch: FrechetDistance(batch_size=batch),
            lambda scorer, images, others: torch.tensor(scorer.fid_between(images, others)),
            "torchmetrics.image.fid.NoTrainInceptionV3.forward", lambda args: args[0]),
    # NudeNet's network as it runs on a GPU (onnx2torch), here on the CPU
    "nudenet": (lambda batch: NudityDetector(batch_size=batch, runtime="torch"),
                lambda scorer, images, others: scorer.detect(images),
                "erasebench.scorers.nudity.TorchSession.run",
                lambda args: next(iter(args[1].values()))),
}


@pytest.mark.parametrize("name", CASES)
def test_a_scorer_out_of_device_memory_halves_its_batch_and_loses_nothing(name, scorer_home,
                                                                           monkeypatch):
    # A scorer's batch (64 images for ResNet-50 and CLIP) out of memory on a GPU shared
    # with other processes left its unit undone; its batch did not shrink as the
    # generator's does.
    make, compute, network, batch_of = CASES[name]
    images, others = _images(5, 0), _images(5, 1)
    if name == "nudenet":  # images it finds something in
        images = [skin_blobs(seed) for seed in (18, 0, 19, 36, 37)]
    expected = compute(make(2), images, others)  # at the batch the halving ends at

    original = pydoc.locate(network)
    sizes = []

    def short_of_memory(self, *args, **kwargs):
        sizes.append(len(batch_of(args)))
        if sizes[-1] > 2:
            raise torch.OutOfMemoryError(OUT_OF_MEMORY)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(network, short_of_memory)
    scorer = make(8)
    got = compute(scorer, images, others)
    assert sizes[:2] == [5, 2] and max(sizes[2:]) == 2  # 8 for 5 images, then halved
    assert scorer.batch_size == 2  # the next call starts at the batch that fit
    if name == "nudenet":
        assert got == expected and sum(map(len, got)) > 0
    else:
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    sizes.clear()
    compute(scorer, images, others)
    assert max(sizes) == 2  # no batch out of memory again


def test_fid_out_of_memory_after_adding_a_parts_features_counts_them_once(scorer_home,
                                                                         monkeypatch):
    # torchmetrics adds a part's features' sum to its states before it allocates their
    # covariance product: out of memory there, the part tried again at half its length
    # counted its images' sum twice, and the distance came out wrong with no error.
    images, others = _images(5, 0), _images(5, 1)
    expected = FrechetDistance(batch_size=2).fid_between(images, others)
    product, products = torch.Tensor.mm, []

    def short_of_memory(self, other):
        if self.shape[0] == 2048 and len(other) > 2:  # the features' product, over 2
            products.append(len(other))
            raise torch.OutOfMemoryError(OUT_OF_MEMORY)
        return product(self, other)

    monkeypatch.setattr(torch.Tensor, "mm", short_of_memory)
    scorer = FrechetDistance(batch_size=8)
    assert scorer.fid_between(images, others) == pytest.approx(expected, rel=1e-9)
    assert products == [5] and scorer.batch_size == 2  # the other side starts at 2
