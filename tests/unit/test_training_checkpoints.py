"""Checkpoints of an eraser's training: a stopped erasure resumes and makes the same edit."""

import os
import signal
import threading

import pytest
import torch

from erasebench.baselines.common import train_loop
from erasebench.cached_work import checkpoint_size
from erasebench.registry import ERASERS
from erasebench.specs import ErasureRequest
from erasebench.stopping import Stopped, request_stop, signals_stop, withdraw_stop_request
from erasebench.training_checkpoints import (
    CheckpointPlace,
    LoopCheckpoint,
    TrainingState,
    _read,
    _write,
    checkpointing,
)

REQUEST = ErasureRequest(concepts=("circle",))
# Every in-tree eraser that trains with train_loop, with enough steps on the tiny model for
# a stop in the middle.
TRAINED = {"esd_x": {"iterations": 6}, "esd_u": {"iterations": 6},
           "all_but_one": {"iterations": 6}, "ca": {"steps": 6},
           "ap": {"iterations": 6}, "age": {"iterations": 6},
           "ap_pgd": {"iterations": 6, "search": "pgd", "schedule": "alternate"}}


def _eraser(name):
    return ERASERS.get(_registered(name))(dict(TRAINED[name]), preset="tiny")


def _registered(name):
    return "ap" if name == "ap_pgd" else name


class _Killed(Exception):
    """Stands for the process dying right after a checkpoint was written."""


def test_nested_state_comes_back_as_it_was_saved(tmp_path):
    state = {"ints": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}},
             "group": [{"lr": 1e-3, "betas": (0.9, 0.999), "amsgrad": False, "name": None}],
             "generator": torch.Generator().manual_seed(5).get_state(),
             "history": [{"step": 0, "drawn": ["ring"], "top": [["ring", 0.5]]}],
             "half": torch.ones(4, dtype=torch.bfloat16)}
    path = _write(tmp_path / "state.safetensors", state)
    loaded = _read(path)
    assert loaded.keys() == state.keys()
    assert list(loaded["ints"]) == [0], "int keys stay ints (Adam's state is keyed by them)"
    torch.testing.assert_close(loaded["ints"][0]["exp_avg"], state["ints"][0]["exp_avg"])
    assert loaded["group"] == state["group"] and isinstance(loaded["group"][0]["betas"], tuple)
    assert torch.equal(loaded["generator"], state["generator"])
    assert loaded["history"] == state["history"]
    assert loaded["half"].dtype == torch.bfloat16


def test_a_damaged_or_foreign_file_reads_as_no_checkpoint(tmp_path):
    damaged = _write(tmp_path / "a.safetensors", {"x": torch.ones(3)})
    damaged.write_bytes(damaged.read_bytes()[:-5])
    assert _read(damaged) is None
    from safetensors.torch import save_file

    save_file({"x": torch.ones(1)}, str(tmp_path / "b.safetensors"))
    assert _read(tmp_path / "b.safetensors") is None
    assert _read(tmp_path / "absent.safetensors") is None
    with pytest.raises(TypeError, match="not object"):
        _write(tmp_path / "c.safetensors", {"x": object()})


def _erase(eraser, model, place=None):
    if place is None:
        return eraser.erase(model, REQUEST)
    with checkpointing(place):
        return eraser.erase(model, REQUEST)


@pytest.mark.parametrize("name", TRAINED)
def test_an_erasure_killed_after_a_checkpoint_resumes_to_the_same_edit(name, tiny, tmp_path,
                                                                      monkeypatch):
    whole = _erase(_eraser(name), tiny)
    saves = []
    original = LoopCheckpoint.save

    def save_then_die(self, next_step, losses, stopping=False):
        saved = original(self, next_step, losses, stopping)
        saves.append(next_step)
        if next_step == 3:
            raise _Killed
        return saved

    monkeypatch.setattr(LoopCheckpoint, "save", save_then_die)
    stem = tmp_path / "training" / "edit"
    with pytest.raises(_Killed):
        _erase(_eraser(name), tiny, CheckpointPlace(stem, every=0.0))
    assert saves == [1, 2, 3]
    (saved,) = CheckpointPlace(stem).files()
    assert saved.name == "edit.loop-0.safetensors"
    # The cache-space check prices it before it exists (its weights and Adam's moments).
    estimate = checkpoint_size(_eraser(name), tiny)
    assert abs(estimate - saved.stat().st_size) < 0.15 * saved.stat().st_size, (
        estimate, saved.stat().st_size)

    said = []
    monkeypatch.setattr(LoopCheckpoint, "save", original)
    resumed = _erase(_eraser(name), tiny, CheckpointPlace(stem, every=1e9, say=said.append))
    assert said == [f"{_registered(name)} training: resumed at step 4 of 6 from its checkpoint"]
    assert resumed.weights.keys() == whole.weights.keys()
    for key, value in whole.weights.items():
        assert torch.equal(resumed.weights[key], value), f"{key} differs from the whole edit's"
    assert resumed.notes == whole.notes, "AP's search: its draws and history as if never stopped"


def _toy_loop(steps, state, stop_at=None, requested_at=None):
    """Fits a 3-vector to noise from a seeded generator; returns (parameter, losses)."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.nn.Parameter(torch.zeros(3))

    def step(index):
        if index == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives inside the step
        if index == requested_at:  # as a Ray actor's driver asks, on a thread of its own
            asking = threading.Thread(target=request_stop)
            asking.start()
            asking.join()
        target = torch.randn(3, generator=generator)
        return ((weight - target) ** 2).sum()

    losses = train_loop(steps, step, [weight], 0.1, "toy training", progress=False,
                        state=TrainingState(generators=[generator]) if state else None)
    return weight.detach().clone(), losses


def test_sigterm_in_a_step_finishes_it_saves_its_checkpoint_then_stops(tmp_path):
    whole, whole_losses = _toy_loop(5, state=True)
    place = CheckpointPlace(tmp_path / "edit", every=1e9)
    with pytest.raises(Stopped), signals_stop(), checkpointing(place):
        _toy_loop(5, state=True, stop_at=2)
    saved = _read(place.files()[0])
    assert saved["next_step"] == 3 and len(saved["losses"]) == 3
    with signals_stop(), checkpointing(CheckpointPlace(tmp_path / "edit")):
        resumed, losses = _toy_loop(5, state=True)
    assert torch.equal(resumed, whole) and losses == whole_losses


def test_a_stop_requested_off_the_main_thread_ends_the_step_saves_and_stops(tmp_path):
    # A Ray actor's training, which no signal reaches and which may run on a thread of the
    # actor's pool, is asked to stop by its driver (erasebench.ray_backend).
    whole, whole_losses = _toy_loop(5, state=True)
    said, outcome = [], []
    place = CheckpointPlace(tmp_path / "edit", every=1e9, say=said.append)

    def train():
        try:
            with checkpointing(place):
                _toy_loop(5, state=True, requested_at=2)
        except Stopped as stop:
            outcome.append(stop.signum)

    try:
        training = threading.Thread(target=train)
        training.start()
        training.join()
    finally:
        withdraw_stop_request()
    assert outcome == [signal.SIGTERM]
    assert said == ["toy training: stopping after step 3 of 5, saved for the next start to "
                    "resume from"]
    with checkpointing(CheckpointPlace(tmp_path / "edit")):
        resumed, losses = _toy_loop(5, state=True)
    assert torch.equal(resumed, whole) and losses == whole_losses


def test_a_loop_that_declares_no_state_is_neither_saved_nor_held_back(tmp_path):
    place = CheckpointPlace(tmp_path / "edit", every=0.0)
    with pytest.raises(Stopped), signals_stop(), checkpointing(place):
        _toy_loop(5, state=False, stop_at=2)
    assert place.files() == []


def test_a_checkpoint_of_another_loop_is_not_resumed_from(tmp_path):
    place = CheckpointPlace(tmp_path / "edit", every=0.0)
    with checkpointing(place):
        _toy_loop(3, state=True)
    assert _read(place.files()[0])["next_step"] == 3
    whole = _toy_loop(5, state=True)
    with checkpointing(CheckpointPlace(tmp_path / "edit", every=1e9)):
        other = _toy_loop(5, state=True)  # 5 steps: the 3-step loop's file is not its own
    assert torch.equal(other[0], whole[0]) and other[1] == whole[1]


def test_a_checkpoint_that_cannot_be_written_is_said_and_the_training_goes_on(tmp_path,
                                                                             monkeypatch):
    import erasebench.training_checkpoints as checkpoints

    def disk_full(path, write):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "atomic_write", disk_full)
    said = []
    whole = _toy_loop(4, state=True)
    with checkpointing(CheckpointPlace(tmp_path / "edit", every=0.0, say=said.append)):
        kept_going = _toy_loop(4, state=True)
    assert torch.equal(kept_going[0], whole[0]) and kept_going[1] == whole[1]
    assert said[0] == ("toy training: could not save its checkpoint after step 1 of 4 "
                       "([Errno 28] No space left on device); training goes on")
    assert len(said) == 4 and list(tmp_path.iterdir()) == []
