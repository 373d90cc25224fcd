import pytest
import torch

from erasebench import hardware
from erasebench.errors import UserError
from erasebench.hardware import checked_device, cpu_name, describe_device


def test_the_cpus_model_name_is_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                       "model name\t: AMD EPYC 7763  64-Core Processor\nflags\t: fpu\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 7763  64-Core Processor\n")
    assert cpu_name(cpuinfo) == "AMD EPYC 7763 64-Core Processor"  # spaces squeezed
    # No such line (some ARM kernels), or no such file (macOS): what platform knows.
    cpuinfo.write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")
    assert cpu_name(cpuinfo) == hardware.platform.processor()
    assert cpu_name(tmp_path / "missing") == hardware.platform.processor()


def test_a_device_is_named_with_its_model_and_without_a_gpus_index(monkeypatch):
    describe_device.cache_clear()
    monkeypatch.setattr(hardware, "cpu_name", lambda: "Some CPU")
    names = {0: "NVIDIA H100 80GB HBM3", 1: "NVIDIA A100-SXM4-80GB"}

    def device_name(index):
        if index not in names:
            raise RuntimeError("CUDA error: invalid device ordinal")  # as torch says it
        return names[index]

    monkeypatch.setattr(torch.cuda, "get_device_name", device_name)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    try:
        assert describe_device("cpu") == "cpu (Some CPU)"
        assert describe_device("cuda:0") == "cuda (NVIDIA H100 80GB HBM3)"
        assert describe_device("cuda") == "cuda (NVIDIA A100-SXM4-80GB)"  # the current GPU
        assert describe_device("mps") == "mps"
        assert describe_device("cuda:7") == "cuda"  # no such GPU here (a dry run's)
        describe_device.cache_clear()
        monkeypatch.setattr(hardware, "cpu_name", lambda: "")
        assert describe_device("cpu") == "cpu"  # a CPU that cannot be told is just that
    finally:
        describe_device.cache_clear()


def _gpus(monkeypatch, count, built_for="12.8"):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.version, "cuda", built_for)


def test_a_device_this_machine_has_is_taken_as_given(monkeypatch):
    _gpus(monkeypatch, 2)
    for device in ["auto", "cpu", "cuda", "cuda:0", "cuda:1"]:
        assert checked_device(device) == device


@pytest.mark.parametrize("device", ["cdua", "nvidia", "cuda:x", "cuda:", "mps", "CPU", "cuda:-1"])
def test_a_mistyped_device_is_refused_naming_the_devices_taken(monkeypatch, device):
    _gpus(monkeypatch, 2)
    for here in (True, False):
        with pytest.raises(UserError, match=f"--device '{device}' is not a device erasebench "
                           "runs on: 'auto' \\(cuda if present\\), 'cpu', 'cuda' or 'cuda:N'"):
            checked_device(device, here=here)


def test_a_gpu_this_machine_lacks_is_refused_saying_why(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    _gpus(monkeypatch, 0)
    with pytest.raises(UserError, match=r"--device cuda: torch sees no GPU on this machine "
                       r"\(no NVIDIA driver or GPU found\); use --device cpu, or auto"):
        checked_device("cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UserError, match="CUDA_VISIBLE_DEVICES='' hides them"):
        checked_device("cuda:0")
    _gpus(monkeypatch, 0, built_for=None)
    with pytest.raises(UserError, match="this torch is built without CUDA"):
        checked_device("cuda")
    _gpus(monkeypatch, 2)
    with pytest.raises(UserError, match="--device cuda:2: torch sees 2 GPUs, cuda:0 to cuda:1"):
        checked_device("cuda:2")
    _gpus(monkeypatch, 1)
    with pytest.raises(UserError, match="--device cuda:1: torch sees 1 GPU, cuda:0, on"):
        checked_device("cuda:1")


def test_another_machines_gpu_is_taken_where_the_device_is_not_this_machines(monkeypatch):
    # A Ray cluster's, or the GPU machine a dry run prices a run for.
    _gpus(monkeypatch, 0)
    assert checked_device("cuda", here=False) == "cuda"
    assert checked_device("cuda:3", here=False) == "cuda:3"


def test_a_record_is_made_on_its_own_device_or_on_any_of_a_kind_named_alone():
    from erasebench.hardware import made_on

    h100, a100 = "cuda (NVIDIA H100 80GB HBM3)", "cuda (NVIDIA A100-SXM4-80GB)"
    assert made_on(h100, h100) and not made_on(a100, h100)
    assert made_on(h100, "cuda") and made_on(a100, "cuda")  # a machine without the GPU
    assert not made_on("cpu (Some CPU)", "cuda") and not made_on(h100, "cpu")
    assert made_on("cuda", "cuda") and not made_on("cuda", h100)


def test_auto_is_resolved_to_the_device_torch_sees_and_others_kept(monkeypatch):
    # Scorers and models are handed the device: torch takes 'cuda' or 'cpu', not 'auto'.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.resolved_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert hardware.resolved_device("auto") == "cuda"
    assert hardware.resolved_device("cuda:1") == "cuda:1"
    assert hardware.resolved_device("cpu") == "cpu"
