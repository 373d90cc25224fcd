"""slurm/erasebench-ray.sbatch, run as Slurm would run it on a one-node allocation: with
`srun` and `scontrol` standing in for Slurm's on this machine, it starts a Ray head, runs
the units on it and stops Ray again."""

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from erasebench.results import load_results

pytest.importorskip("ray")
SCRIPT = Path(__file__).parents[2] / "slurm" / "erasebench-ray.sbatch"
STAND_INS = {
    # srun on one machine: its options dropped, the command run here.
    "srun": 'while [[ "$1" == -* ]]; do shift; done\nexec "$@"\n',
    "scontrol": 'echo localhost\n',  # `scontrol show hostnames`: the allocation's one node
    "hostname": 'echo 127.0.0.1\n',  # `hostname --ip-address`, whatever this machine's says
}


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(shutil.which("ray") is None or not Path("/proc").is_dir(),
                    reason="needs Ray's command line, and Linux's /proc to look for its processes")
def test_the_slurm_script_runs_the_units_on_a_ray_cluster_it_starts(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STAND_INS.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body)
        (bin_dir / name).chmod(stat.S_IRWXU)
    token = tmp_path / "auth_token"  # not this machine's ~/.ray
    token.write_text(os.urandom(32).hex())
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "SLURM_JOB_NODELIST": "localhost", "SLURM_CPUS_PER_TASK": "2",
           "ERASEBENCH_RAY_PORT": str(_free_port()), "RAY_AUTH_TOKEN_PATH": str(token)}
    env.pop("RAY_ADDRESS", None)
    results, log = tmp_path / "results", tmp_path / "job.log"
    with log.open("w") as output:  # a file, not a pipe, which a Ray left running would hold
        done = subprocess.run(
            ["bash", str(SCRIPT), "--erasers", "sd,uce", "--tasks", "shapes_objects",
             "--task-config", "images_per_class=1", "--task-config", 'splits=[["square"]]',
             "--results", str(results), "--cache", str(tmp_path / "cache"), "--no-report"],
            env=env, stdout=output, stderr=subprocess.STDOUT, timeout=300)
    out = " ".join(log.read_text().split())
    assert done.returncode == 0, out[-3000:]
    assert "Ray head on localhost (127.0.0.1:" in out and "1 node(s) of 0 GPU(s), 2 CPU(s)" in out
    assert "(2 to do, asking for 20 images; 2 processes)" in out  # its 2 CPUs, 2 actors
    assert "done 2 on Ray" in out
    assert set(load_results(results).eraser) == {"sd", "uce"}
    # The job's end stopped the Ray head it started (`ray start --block` and what it ran).
    assert not _processes_with(f"--port={env['ERASEBENCH_RAY_PORT']}")


def _processes_with(argument):
    """The command lines of this machine's processes that hold ``argument`` (Linux)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        if argument.encode() in args:
            found.append(b" ".join(args).decode(errors="replace"))
    return found
