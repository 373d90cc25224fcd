"""The Ray backend on a GPU machine: without --device or --workers, the local cluster it
starts has this machine's GPUs, so its actors run the units on CUDA, one per GPU, and give
the rows of a local run on the same GPU. (Ray does not fit in the lent GPU machine's
carried wheels, so this runs where Ray is installed next to a GPU.)"""

import pandas as pd
import pytest
import torch

from erasebench.cli import main
from erasebench.hardware import describe_device
from erasebench.results import ResultStore, load_results

pytestmark = pytest.mark.gpu
ray = pytest.importorskip("ray")

COLUMNS = ["eraser", "request", "task", "metric", "value", "run_id"]


def test_ray_on_a_gpu_machine_gives_the_rows_of_a_local_gpu_run(tmp_path, capsys):
    def run(name, *extra):
        results = tmp_path / name
        argv = ["run", "--erasers", "sd,uce", "--tasks", "shapes_objects",
                "--task-config", "images_per_class=2", "--task-config", 'splits=[["square"]]',
                "--results", str(results), "--cache", str(tmp_path / f"{name}-cache"),
                "--no-report", *extra]
        assert main(argv) == 0
        return load_results(results)[COLUMNS]

    local = run("local", "--device", "cuda", "--workers", "1")
    capsys.readouterr()
    try:
        remote = run("ray", "--backend", "ray")
    finally:
        ray.shutdown()
    out = " ".join(capsys.readouterr().out.split())
    gpus = torch.cuda.device_count()
    assert f"(2 to do, asking for 40 images; {min(gpus, 2)} process" in out
    assert "done 2 on Ray" in out
    devices = {record.provenance.device for record in ResultStore(tmp_path / "ray").records()}
    # The actors', as the cluster's GPU made 'auto' resolve, with its model.
    assert devices == {describe_device("cuda")}
    # The same GPU and batches: equal up to the last bits its kernels may choose.
    pd.testing.assert_frame_equal(local, remote, check_exact=False, rtol=1e-4)
