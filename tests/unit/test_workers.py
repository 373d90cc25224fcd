"""Local worker processes: how many by default, and which GPU each helper gets."""

import os

import pytest
import torch

from erasebench import workers


@pytest.fixture
def four_gpus(monkeypatch):
    """A machine with four GPUs and no CUDA_VISIBLE_DEVICES of its own."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)


def test_on_cuda_there_is_one_process_per_gpu_and_each_helper_sees_another(four_gpus):
    assert workers.auto_workers("cuda") == 4
    # The main process keeps GPU 0 (cuda:0); the helpers get the others.
    assert workers.helper_gpus("cuda", 3) == ["1", "2", "3"]


def test_more_processes_than_gpus_share_them_in_turn(four_gpus):
    assert workers.helper_gpus("cuda", 5) == ["1", "2", "3", "0", "1"]


def test_helpers_take_the_gpus_cuda_visible_devices_names(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5,GPU-8f3c")
    assert workers.auto_workers("cuda") == 3
    assert workers.helper_gpus("cuda", 3) == ["5", "GPU-8f3c", "2"]


@pytest.mark.parametrize("device", ["cuda:1", "cpu"])
def test_a_named_gpu_or_the_cpu_keeps_every_process_where_it_is(four_gpus, device):
    assert workers.helper_gpus(device, 2) == [None, None]
    if device == "cuda:1":
        assert workers.auto_workers(device) == 1
    else:
        assert workers.auto_workers(device) == min(os.cpu_count() or 1, workers.MAX_AUTO_WORKERS)


def test_one_gpu_is_shared_without_naming_it(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert workers.auto_workers("cuda") == 1
    assert workers.helper_gpus("cuda", 2) == [None, None]  # inherited: all on GPU 3


def test_helpers_are_started_on_their_gpus(four_gpus, monkeypatch):
    started = []

    class Recorder:
        def __init__(self, command, env):
            started.append((command, env))

    monkeypatch.setattr(workers.subprocess, "Popen", Recorder)
    monkeypatch.setenv("SOME_SETTING", "kept")
    workers.start_helpers(["run", "--workers", "3", "--device", "cuda"], 2, "cuda")
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in started] == ["1", "2"]
    assert [env[workers.HELPER_VARIABLE] for _, env in started] == ["1", "2"]
    assert all(env["SOME_SETTING"] == "kept" for _, env in started)
    assert all(command[command.index("--workers") + 1] == "1" for command, _ in started)

    started.clear()
    workers.start_helpers(["run"], 1, "cpu")
    assert "CUDA_VISIBLE_DEVICES" not in started[0][1]
