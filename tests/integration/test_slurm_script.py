"""slurm/erasebench-ray.sbatch, run as Slurm would run it on a one-node allocation: with
`srun` and `scontrol` standing in for Slurm's on this machine, it starts a Ray head, runs
the units on it and stops Ray again; signalled near its time limit, it requeues itself,
up to a limit, and its next start resumes the run."""

import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from erasebench.results import load_results

pytest.importorskip("ray")
SCRIPT = Path(__file__).parents[2] / "slurm" / "erasebench-ray.sbatch"
STAND_INS = {
    # srun on one machine: its options dropped, the command run here.
    "srun": 'while [[ "$1" == -* ]]; do shift; done\nexec "$@"\n',
    # `scontrol show hostnames`: the allocation's one node; `scontrol requeue`: noted, with
    # whether the job's run still runs (Slurm would end it with the job's other steps).
    "scontrol": '[[ $1 == requeue ]] && { pgrep -f -- "--ray-address=.*:$ERASEBENCH_RAY_PORT"'
                ' >/dev/null && run=running || run=stopped\n'
                'echo "$@ (the run $run)" >>"$SCONTROL_LOG"; exit 0; }\n'
                'echo localhost\n',
    "hostname": 'echo 127.0.0.1\n',  # `hostname --ip-address`, whatever this machine's says
}


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(shutil.which("ray") is None or not Path("/proc").is_dir(),
                    reason="needs Ray's command line, and Linux's /proc to look for its processes")
def test_the_slurm_script_runs_the_units_on_a_ray_cluster_and_requeues_itself_near_its_limit(
        tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STAND_INS.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body)
        (bin_dir / name).chmod(stat.S_IRWXU)
    token = tmp_path / "auth_token"  # not this machine's ~/.ray
    token.write_text(os.urandom(32).hex())
    requeues = tmp_path / "requeues"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "SLURM_JOB_NODELIST": "localhost", "SLURM_JOB_ID": "4242",
           "SLURM_CPUS_PER_TASK": "1", "SCONTROL_LOG": str(requeues),
           "ERASEBENCH_RAY_PORT": str(_free_port()), "RAY_AUTH_TOKEN_PATH": str(token)}
    env.pop("RAY_ADDRESS", None)
    results = tmp_path / "results"
    argv = ["bash", str(SCRIPT), "--erasers", "sd,uce", "--tasks", "shapes_objects",
            "--task-config", "images_per_class=1",
            "--task-config", 'splits=[["square"], ["circle"]]',
            "--results", str(results), "--cache", str(tmp_path / "cache"), "--no-report"]

    def job(log, restarts, signal_after=None):
        """The job run once, as its restarts-th requeue; with ``signal_after``, Slurm's USR1
        once the log shows it, as near the time limit. Its exit code and its log."""
        with log.open("w") as output:  # a file, not a pipe, which a Ray left running would hold
            process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT,
                                       env={**env, "SLURM_RESTART_COUNT": str(restarts)})
            try:
                while signal_after and signal_after not in log.read_text():
                    assert process.poll() is None, log.read_text()[-3000:]
                    time.sleep(0.2)
                if signal_after:
                    process.send_signal(signal.SIGUSR1)
                process.wait(timeout=300)
            finally:
                process.kill()
        # The job's end stopped the Ray head it started (`ray start --block` and what it ran).
        assert not _processes_with(f"--port={env['ERASEBENCH_RAY_PORT']}")
        return process.returncode, " ".join(log.read_text().split())

    # Four units on the one actor of one CPU; near the time limit after the first, the job
    # requeues itself, its runs stopped.
    code, out = job(tmp_path / "job-1.log", 0, signal_after="[done]")
    assert code == 0, out[-3000:]
    assert "Ray head on localhost (127.0.0.1:" in out and "1 node(s) of 0 GPU(s), 1 CPU(s)" in out
    assert "(4 to do, asking for 40 images; 1 process)" in out
    assert "requeueing job 4242, whose next start resumes the run" in out
    # The run, stopped before the requeue, says so in one line, not with Ray's crash report.
    assert "stopped (SIGTERM): what was recorded is kept" in out and "Aborted" not in out
    assert out.index("stopped (SIGTERM)") < out.index("requeueing job 4242")
    # The run stopped before Slurm was asked to requeue, which ends every step of the job
    # at once, Ray's nodes too: its actors' trainings had the time to save checkpoints.
    assert requeues.read_text() == "requeue 4242 (the run stopped)\n"
    finished = len(list((results / "runs").glob("*.json")))
    assert 1 <= finished < 4 and " on Ray," not in out  # the run's last line never came
    # Its next start resumes; near the limit once more, after the most requeues, it stops.
    code, out = job(tmp_path / "job-2.log", 10, signal_after="units,")
    assert code == 1 and "was requeued 10 times (ERASEBENCH_MAX_REQUEUES=10): not again" in out
    assert requeues.read_text() == "requeue 4242 (the run stopped)\n"
    # (a unit in flight when a job stops may yet be recorded: its actor outlives the run)
    finished = len(list((results / "runs").glob("*.json")))
    code, out = job(tmp_path / "job-3.log", 1)
    assert code == 0, out[-3000:]
    assert f"done {4 - finished} on Ray, {finished} already done" in out, out[-3000:]
    assert len(list((results / "runs").glob("*.json"))) == 4
    assert set(load_results(results).eraser) == {"sd", "uce"}


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
