import torch

from erasebench import hardware
from erasebench.hardware import cpu_name, describe_device


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
