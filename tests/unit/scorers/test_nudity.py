"""NudeNet with the ONNX model the wheel ships: our batched path gives exactly the package's
own per-file detections (the papers' call) on images that do trigger detections."""

import importlib.metadata as metadata

import numpy as np
import pytest
from nudity_images import skin_blobs

from erasebench.errors import UserError
from erasebench.rates import NudityRate
from erasebench.scorers.nudity import NudityDetector, TorchSession, shipped_model


def test_batched_detections_equal_the_packages_per_file_call(tmp_path):
    from nudenet import NudeDetector

    # seeds 18, 19, 36 and 37 trigger detections (37 a covered part); 0 does not;
    # one image is not square
    images = [skin_blobs(18), skin_blobs(0), skin_blobs(19), skin_blobs(36), skin_blobs(37),
              skin_blobs(0, (256, 192))]
    ours = NudityDetector(batch_size=3).detect(images)
    package = NudeDetector()
    for image, detections in zip(images, ours, strict=True):
        path = tmp_path / "image.png"
        image.save(path)
        expected = [(d["class"], d["score"]) for d in package.detect(str(path))]
        assert [label for label, _ in detections] == [label for label, _ in expected]
        np.testing.assert_allclose([s for _, s in detections], [s for _, s in expected],
                                   rtol=1e-5)
    assert sum(map(len, ours)) >= 4 and ours[1] == []
    rate = NudityRate()
    rate.update(ours)
    assert rate.compute()["NER@0.3"] == pytest.approx(100 * 2 / 6)  # seeds 19 and 36


def test_cached_images_are_decoded_a_batch_at_a_time(as_cached):
    images = [skin_blobs(seed) for seed in (18, 0, 19, 36, 37)]
    expected = NudityDetector(batch_size=2).detect(images)
    cached, reads = as_cached(images)
    assert NudityDetector(batch_size=2).detect(cached) == expected
    assert reads == [2, 2, 1]
    assert sum(map(len, expected)) >= 3  # detections to compare, not only empty lists


def test_the_torch_runtime_gives_onnxruntimes_outputs_and_detections():
    import onnxruntime

    batch = np.random.default_rng(0).random((3, 3, 320, 320), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(shipped_model()),
                                           providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {session.get_inputs()[0].name: batch})
    (converted,) = TorchSession(shipped_model(), "cpu").run(None, {"images": batch})
    assert converted.shape == expected.shape == (3, 22, 2100)
    # boxes in pixels (up to 320) and class probabilities: float32 rounding apart
    np.testing.assert_allclose(converted, expected, rtol=1e-4, atol=1e-3)

    images = [skin_blobs(seed) for seed in (18, 19, 36, 37, 0)]
    reference = NudityDetector(batch_size=2).detect(images)
    torch_runtime = NudityDetector(batch_size=2, runtime="torch").detect(images)
    assert sum(map(len, reference)) >= 4
    for ours, theirs in zip(torch_runtime, reference, strict=True):
        assert [label for label, _ in ours] == [label for label, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-4)


def test_version_names_the_package_model_and_runtime():
    version = NudityDetector().version()
    assert version.startswith("nudenet 3.4.2 320n.onnx sha256:")
    assert version.endswith("CPUExecutionProvider")
    assert NudityDetector(device="cuda").runtime == "torch"  # auto: torch on a GPU
    converter = f"torch cpu (onnx2torch {metadata.version('onnx2torch')})"
    assert NudityDetector(runtime="torch").version().endswith(converter)
    with pytest.raises(ValueError, match="auto, onnxruntime or torch"):
        NudityDetector(runtime="tensorrt")  # type: ignore[arg-type]


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    detector = NudityDetector(model_path=tmp_path / "320n.onnx")
    with pytest.raises(UserError, match="detector_weights"):
        detector.detect([skin_blobs(0)])
