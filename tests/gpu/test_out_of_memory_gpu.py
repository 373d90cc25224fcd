"""A real CUDA out-of-memory error, in torch's own words, read as a run reads it: the unit
left undone and named with the memory torch accounts for, the others going on."""

import pytest
import torch

from erasebench.cli import main
from erasebench.results import ResultStore

pytestmark = pytest.mark.gpu


def test_an_erasure_bigger_than_the_gpu_is_left_undone_in_torchs_words(tmp_path, capsys,
                                                                       monkeypatch):
    def bigger_than_the_gpu(self, model, request):
        _, total = torch.cuda.mem_get_info()
        torch.empty(2 * total, dtype=torch.uint8, device="cuda")

    monkeypatch.setattr("erasebench.testing.MockEraser.erase", bigger_than_the_gpu)
    results = tmp_path / "results"
    assert main(["run", "--model", "tiny", "--erasers", "mock,sd", "--tasks", "mock",
                 "--device", "cuda", "--steps", "2", "--workers", "1", "--no-report",
                 "--results", str(results), "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert "  [out of memory] mock x mock [" in err, err
    assert "making its erasure: CUDA out of memory. Tried to allocate " in err
    assert " has a total capacity of " in err and "PYTORCH_CUDA_ALLOC_CONF" not in err
    assert "error: 1 of the 2 units to do ran out of memory and is left undone" in err
    assert [record.spec.eraser.name for record in ResultStore(results).records()] == ["sd"]
    assert torch.cuda.memory_allocated() < 2**30  # what the failed unit held was freed


def test_a_scorer_short_of_memory_halves_its_batch_to_one_that_fits(scorer_home):
    # The process may hold only the network and 256 MB more: ResNet-50's activations for 64
    # images of 224 px (about 10 MB each) do not fit, those of a few do.
    from PIL import Image

    from erasebench.scorers.imagenet import ImageNetClassifier

    rng = torch.Generator().manual_seed(0)
    images = [Image.fromarray(torch.randint(0, 255, (224, 224, 3), generator=rng,
                                            dtype=torch.uint8).numpy()) for _ in range(64)]
    scorer = ImageNetClassifier(device="cuda", batch_size=64)
    scorer.model()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(
        (torch.cuda.memory_reserved() + 256 * 2**20) / total)
    try:
        logits = scorer.logits(images)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert 1 <= scorer.batch_size < 64
    expected = ImageNetClassifier(device="cuda", batch_size=scorer.batch_size).logits(images)
    torch.testing.assert_close(logits, expected, rtol=1e-3, atol=1e-3)


def test_the_recovery_attack_short_of_memory_splits_its_samples_into_passes_that_fit():
    # On SD's UNet a backward pass of the robustness task's 32 samples may hold more than a
    # GPU has. Held to what an attack's fixed part and 8 samples take (measured from
    # attacks of 4 and 8 samples), the attack splits its samples into passes that fit and
    # attacks as one cut into smaller passes from the start does.
    import numpy as np
    from PIL import Image

    from erasebench.generate import Generator
    from erasebench.memory import measure_peak
    from erasebench.models import DiffusionModel
    from erasebench.probe import ModelProbe
    from erasebench.registry import ERASERS
    from erasebench.specs import ErasureRequest, GenerationSpec
    from erasebench.tasks.robustness.recovery import AttackSettings, FittedPasses, recover

    model = DiffusionModel.sd_v1_random(device="cuda")
    request = ErasureRequest(concepts=("cassette player",))
    probe = ModelProbe(model, ERASERS.get("uce")().erase(model, request),
                       Generator(model, GenerationSpec(), progress=False))
    # Two images, whose VAE encoding takes less than the UNet's passes
    pixels = np.random.default_rng(0).integers(0, 256, (2, 512, 512, 3), np.uint8)
    references = [Image.fromarray(image) for image in pixels]
    texts = [f"a photo of a cassette player, view {i}" for i in range(2)]
    settings = AttackSettings(steps=2, samples=32)  # bf16 autocast on the GPU
    peaks = {}
    for samples in (4, 8):
        torch.cuda.empty_cache()
        with measure_peak(torch.device("cuda")) as peak:
            recover(probe, texts, references, 0.2, AttackSettings(steps=1, samples=samples))
        peaks[samples] = peak.bytes
    per_sample = (peaks[8] - peaks[4]) / 4
    fixed = peaks[4] - 4 * per_sample
    assert per_sample > 0, peaks
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(
        (torch.cuda.memory_reserved() + fixed + 8 * per_sample) / total)
    passes = FittedPasses()
    try:
        _, losses = recover(probe, texts, references, 0.2, settings, passes)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert passes.samples is not None and 2 <= passes.samples < 32, passes
    smaller = FittedPasses(samples=passes.samples // 2, images=passes.images)
    _, cut_from_the_start = recover(probe, texts, references, 0.2, settings, smaller)
    assert losses == pytest.approx(cut_from_the_start, rel=2e-2)
    assert losses[0] > 0  # UCE's edit moves the predictions the attack undoes
