"""Every in-tree eraser on Stable Diffusion v1.4's full-size architecture (random weights),
on a GPU: a couple of steps each, under bf16 autocast. Skipped without CUDA."""

import pytest
import torch

from erasebench.models import DiffusionModel
from erasebench.registry import ERASERS
from erasebench.specs import ErasureRequest

pytestmark = pytest.mark.gpu
FEW_STEPS = {"esd_x": {"iterations": 2}, "esd_u": {"iterations": 2},
             "ca": {"steps": 2, "anchor_images": 2, "anchor_steps": 2},
             "mace": {"lora_steps": 2, "images_per_concept": 2, "image_steps": 2},
             # the papers' vocabularies (EN3K, ImageNet) searched in full on the GPU
             "ap": {"iterations": 2}, "age": {"iterations": 2},
             "ap_simultaneous": {"iterations": 2, "schedule": "simultaneous"},
             "all_but_one": {"iterations": 2}}


@pytest.fixture(scope="module")
def sd_random():
    return DiffusionModel.sd_v1_random(device="cuda")


@pytest.mark.parametrize("name", ["uce", *FEW_STEPS])
def test_runs_on_full_size_sd_and_changes_only_what_it_declares(sd_random, name):
    eraser = ERASERS.get(name.split("_simultaneous")[0])(FEW_STEPS.get(name, {}))
    # compared on the GPU: hashing a billion weights on the CPU takes seconds per eraser
    before = {n: p.detach().clone() for n, p in sd_random.named_parameters()}
    edit = eraser.erase(sd_random, ErasureRequest(concepts=("church",)))
    assert edit.weights and set(edit.weights) <= set(eraser.editable_parameters(sd_random))
    assert all(torch.isfinite(w).all() for w in edit.weights.values())
    moved = [n for n, p in sd_random.named_parameters() if not torch.equal(p, before[n])]
    assert not moved, f"erase() must leave the model as it was; it moved {moved[:3]}"


@pytest.mark.parametrize("name", ["esd_x", "ap"])
def test_frozen_weights_held_in_bf16_make_the_same_edit_on_the_gpu(sd_random, monkeypatch,
                                                                   name):
    """``frozen_weights_cast`` under CUDA's bf16 autocast: the edit is the one autocast
    casting every frozen weight at every call makes, bit for bit."""
    from erasebench import training_precision

    def erase():
        eraser = ERASERS.get(name)(FEW_STEPS[name])
        return eraser.erase(sd_random, ErasureRequest(concepts=("church",))).weights

    held = erase()
    monkeypatch.setattr(training_precision, "frozen_layer_weights", lambda module: [])
    as_autocast_casts = erase()
    assert held and held.keys() == as_autocast_casts.keys()
    assert all(torch.equal(held[key], as_autocast_casts[key]) for key in held)


class _Killed(Exception):
    """Stands for the process dying right after a checkpoint was written."""


@pytest.mark.parametrize("name", ["esd_x", "ap"])
def test_an_erasure_killed_after_a_checkpoint_resumes_to_the_same_edit_on_the_gpu(
        sd_random, tmp_path, monkeypatch, name):
    """The CUDA parameters, Adam's state and AP's search go to the checkpoint file through
    the CPU and come back (erasebench.training_checkpoints; bit for bit on CPU in
    tests/unit/test_training_checkpoints.py)."""
    from erasebench.cached_work import checkpoint_size
    from erasebench.training_checkpoints import CheckpointPlace, LoopCheckpoint, checkpointing

    config, request = {**FEW_STEPS[name], "iterations": 3}, ErasureRequest(concepts=("church",))
    whole = ERASERS.get(name)(config).erase(sd_random, request)
    original = LoopCheckpoint.save

    def save_then_die(self, next_step, losses, stopping=False):
        original(self, next_step, losses, stopping)
        raise _Killed

    monkeypatch.setattr(LoopCheckpoint, "save", save_then_die)
    with pytest.raises(_Killed), checkpointing(CheckpointPlace(tmp_path / "edit", every=0.0)):
        ERASERS.get(name)(config).erase(sd_random, request)
    monkeypatch.setattr(LoopCheckpoint, "save", original)
    # The cache-space check's price of it, at SD's size (0.5 GB): within 1% of the file.
    (saved,) = CheckpointPlace(tmp_path / "edit").files()
    estimate = checkpoint_size(ERASERS.get(name)(config), sd_random)
    assert abs(estimate - saved.stat().st_size) < 0.01 * saved.stat().st_size
    said = []
    with checkpointing(CheckpointPlace(tmp_path / "edit", every=1e9, say=said.append)):
        resumed = ERASERS.get(name)(config).erase(sd_random, request)
    assert said == [f"{name} training: resumed at step 2 of 3 from its checkpoint"]
    assert all(torch.equal(resumed.weights[key], value) for key, value in whole.weights.items())
    assert resumed.notes == whole.notes
