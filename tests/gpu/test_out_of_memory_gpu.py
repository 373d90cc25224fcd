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
