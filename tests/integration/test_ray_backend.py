"""The Ray backend on a local 2-worker Ray cluster gives exactly the rows of the local
backend on the miniature world, and resumes like it; an actor killed mid-unit loses nothing."""

import errno
import re

import pandas as pd
import pytest

from erasebench.cli import main
from erasebench.errors import OutOfDeviceMemory
from erasebench.faults import (
    ENVIRONMENT_VARIABLE,
    LOCKS_OUTLIVE_VARIABLE,
    MARK_VARIABLE,
    OUT_OF_MEMORY_VARIABLE,
)
from erasebench.results import ResultStore, load_results

ray = pytest.importorskip("ray")

COLUMNS = ["eraser", "request", "task", "metric", "value", "run_id"]


def _run(tmp_path, name, *extra, cache="cache", erasers="sd,uce"):
    results = tmp_path / name / "results"
    argv = ["run", "--erasers", erasers, "--tasks", "shapes_objects",
            "--task-config", "images_per_class=3",
            "--task-config", 'splits=[["circle", "star"], ["square"]]',
            "--results", str(results), "--cache", str(tmp_path / cache), *extra]
    return argv, results


def test_ray_gives_the_rows_of_the_local_backend_and_resumes(tmp_path, capsys):
    # Each unit asks for 30 images (10 classes, 3 each): sd's two units the same 30, uce's
    # each its own edit's; uce makes one erasure per split.
    argv, local_results = _run(tmp_path, "local", "--workers", "1")
    assert main(argv) == 0
    held = "in the caches: {} of the 90 distinct images of the units to do, {} of their 2 " \
        "erasures; {} images to draw"
    assert held.format(0, 0, 90) in " ".join(capsys.readouterr().out.split())
    argv, ray_results = _run(tmp_path, "ray", "--backend", "ray", "--workers", "2")
    try:
        assert main(argv) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "done 4 on Ray" in out
        # An actor looked in the cache the local run filled, for the driver's time left.
        assert held.format(90, 2, 0) in out
        assert "; 4/4 units," in out  # the driver tells how far the run is, actors' units too
        assert main(argv) == 0  # everything is done: nothing runs again
        assert "done 0 on Ray, 4 already done" in " ".join(capsys.readouterr().out.split())
        # A cluster already there (as RAY_ADDRESS joins one) of 3 CPUs: without --workers
        # its resources, not this machine's cores, set the actors' device and number.
        ray.shutdown()
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
        argv, cluster_results = _run(tmp_path, "cluster", "--backend", "ray")
        assert main(argv) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "(4 to do, asking for 120 images; 3 processes)" in out and "done 4 on Ray" in out
    finally:
        ray.shutdown()
    local = pd.read_parquet(local_results / "metrics.parquet")[COLUMNS]
    for results in (ray_results, cluster_results):
        remote = pd.read_parquet(results / "metrics.parquet")[COLUMNS]
        pd.testing.assert_frame_equal(local, remote)
    assert len(remote) > 0 and set(remote.eraser) == {"sd", "uce"}


def test_a_unit_whose_actor_dies_runs_again_on_a_new_actor_once_its_lock_is_free(
        tmp_path, capsys, monkeypatch):
    one_split = ("--task-config", 'splits=[["square"]]', "--no-report")  # sd's and uce's unit
    argv, local_results = _run(tmp_path, "local", "--workers", "1", *one_split)
    assert main(argv) == 0
    # One actor SIGKILLed, as on a lost node, once a unit is scored and before its record
    # is written, its lock held 15 s longer, as a lost node's is on NFS until its lease ends
    # (the unit's next try waits for it); the actors draw into a cache of their own.
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "score.done:1")
    monkeypatch.setenv(MARK_VARIABLE, str(tmp_path / "killed"))
    monkeypatch.setenv(LOCKS_OUTLIVE_VARIABLE, "15")
    argv, ray_results = _run(tmp_path, "ray", "--backend", "ray", "--workers", "2", *one_split,
                             cache="ray-cache")
    capsys.readouterr()
    try:
        assert main(argv) == 0
    finally:
        ray.shutdown()
    assert (tmp_path / "killed").is_file()  # an actor did die
    out, err = (" ".join(text.split()) for text in capsys.readouterr())
    lost = re.findall(r"\[lost\] (?:sd|uce) x shapes_objects \[[^]]*\] \(\w+\): its Ray actor "
                      r"died \(process \d+ on [\w.:]+, \w+\); running it again on a new "
                      r"actor, try 2 of 3", err)
    assert len(lost) == 1, err
    assert "done 2 on Ray" in out
    local, remote = (load_results(folder)[COLUMNS] for folder in (local_results, ray_results))
    pd.testing.assert_frame_equal(local, remote)


def test_a_unit_whose_actors_keep_dying_stops_the_run_by_name(tmp_path, capsys, monkeypatch):
    # Every actor dies at the first erasure it comes to: uce's one unit never finishes.
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "erase.done:1")
    argv, results = _run(tmp_path, "ray", "--backend", "ray", "--task-config",
                         'splits=[["square"]]', erasers="uce")
    try:
        assert main(argv) == 2
    finally:
        ray.shutdown()
    out, err = (" ".join(text.split()) for text in capsys.readouterr())
    stopped = re.search(r"error: (uce x shapes_objects \[[^]]*\] \(\w+\)): its Ray "
                        r"actor died 3 times \(the last: process \d+ on [\w.:]+, \w+\)\. The "
                        "units recorded so far are kept, and the same command resumes", err)
    assert stopped, err
    unit = re.escape(stopped.group(1))
    assert re.findall(rf"\[lost\] {unit}: .*? try (\d) of 3", err) == ["2", "3"]
    assert not list((results / "runs").glob("*.json"))  # nothing finished, nothing written


def test_a_unit_out_of_its_actors_memory_is_left_undone_and_the_others_go_on(tmp_path, capsys,
                                                                              monkeypatch):
    # Every erasure runs out of memory as it ends (uce's), as on a GPU too small for it;
    # sd's two units make none and finish.
    monkeypatch.setenv(OUT_OF_MEMORY_VARIABLE, "erase.done")
    argv, results = _run(tmp_path, "ray", "--backend", "ray", "--workers", "2", "--task-config",
                         'splits=[["square"]]')
    try:
        assert main(argv) == 1
    finally:
        ray.shutdown()
    out, err = capsys.readouterr()
    told = re.findall(r"\[out of memory\] uce x shapes_objects \[[^]]*\] \(\w+\) on cpu .*? "
                      r"making its erasure: CUDA out of memory \(the test's fault at "
                      r"erase.done\)\. Tried to allocate 2\.00 GiB; left undone", err)
    assert len(told) == 1, err
    assert "error: 1 of the 2 units to do ran out of memory and is left undone: uce x" in err
    assert "done 1 on Ray, 0 already done, busy (another run) 0, out of memory 1" in out
    assert [ResultStore(results).read(path).spec.eraser.name
            for path in (results / "runs").glob("*.json")] == ["sd"]


@pytest.mark.parametrize("differs", ["results folder", "code"])
def test_an_actor_that_does_not_share_the_drivers_results_folder_or_code_stops_the_run(
        differs, tmp_path, capsys, monkeypatch):
    from erasebench import ray_backend

    if differs == "results folder":  # as on a node without the shared mount: the mark the
        # driver leaves in the results folder is not where the actors look for it
        monkeypatch.setattr(ray_backend, "_leave_mark",
                            lambda folder: folder / ".locks" / "left-on-another-file-system")
        expected = (r"error: the results folder \S+ on the Ray node \S+ is not the driver's: "
                    "the records of the units run there would be missing from the results. "
                    r"Put --results \(and --cache\) on a file system every node sees")
    else:  # as a node with another install than the driver's
        monkeypatch.setattr(ray_backend, "code_identity", lambda: "erasebench 0.0.1 at 0123abc")
        expected = (r"error: the Ray node \S+ runs erasebench \S+( at \w+( with changes "
                    r"\w+)?)?, the driver "
                    "erasebench 0.0.1 at 0123abc: the rows of one run would come from two "
                    "versions of the benchmark. Install the same erasebench on every node.")
    argv, results = _run(tmp_path, "ray", "--backend", "ray", "--workers", "1", "--task-config",
                         'splits=[["square"]]', erasers="sd")
    try:
        assert main(argv) == 2
    finally:
        ray.shutdown()
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(expected, err), err
    assert not list((results / "runs").glob("*.json"))


def test_an_actor_left_without_a_unit_draws_the_images_of_one_running(tmp_path):
    # Another run holds the one unit's lock: the actor handed it finds it busy, and the
    # other actor, with no unit left to hand it, draws all the unit's images (making the
    # erasure nobody had claimed), then the original model's 6 its scoring compares with;
    # the unit's own run then only reads them.
    from filelock import FileLock

    from erasebench.help_records import help_records
    from erasebench.ray_backend import run_on_ray
    from erasebench.registry import ERASERS, TASKS
    from erasebench.runner import Runner, plan
    from erasebench.specs import ModelSpec

    [unit] = plan([ERASERS.get("mock")()], [TASKS.get("mock")({"images_per_concept": 3})],
                  ModelSpec(id="tiny"), {"steps": 3})
    results, cache = tmp_path / "results", tmp_path / "cache"
    (results / ".locks").mkdir(parents=True)
    settings = {"results_dir": results, "cache_dir": cache, "device": "cpu"}
    heard = []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with FileLock(str(results / ".locks" / f"{unit.run_id}.lock")):
            summary = run_on_ray([unit], settings, 2,
                                 on_help=lambda unit, work: heard.append((unit.run_id, work)))
    finally:
        ray.shutdown()
    assert summary.busy == [unit.run_id]
    assert summary.helped == {unit.run_id: 12}
    # The actor wrote its help record into the results folder, as a local helper does, and
    # the driver heard the same (the images and the seconds they took).
    [helping] = help_records(results)
    assert heard == [(unit.run_id, helping)]
    assert (helping.run_id, helping.images_drawn, helping.references_drawn,
            helping.erasure_made) == (unit.run_id, 6, 6, True)
    owner = Runner(results, cache, progress=False)
    assert owner.run_unit(unit) == "done"
    timings = owner.store.record(unit.run_id).provenance.timings
    assert timings.images_drawn == timings.scoring_drawn == 0


def _record_sd_and_mock_with_mock_on_an_h100(common, tmp_path):
    from erasebench.results import ResultStore

    assert main(["run", "--erasers", "sd,mock", "--workers", "1", *common]) == 0
    store = ResultStore(tmp_path / "results")
    [mock] = [record for record in store.records() if record.spec.eraser.name == "mock"]
    mock.provenance.device = "cuda (NVIDIA H100 80GB HBM3)"
    store.write(mock)


def test_the_time_left_of_a_ray_run_takes_the_pace_of_its_actors_device(tmp_path, capsys):
    # sd's and mock's units recorded, mock's as if on a GPU; the driver, which does not know
    # the actors' device, prices uce's unit at sd's pace alone once the first actor names
    # its device (this machine's CPU, which sd's was recorded on).
    from erasebench.hardware import describe_device

    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2",
              "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache"),
              "--no-report"]
    _record_sd_and_mock_with_mock_on_an_h100(common, tmp_path)
    capsys.readouterr()
    try:
        assert main(["run", "--erasers", "sd,mock,uce", "--backend", "ray", *common]) == 0
    finally:
        ray.shutdown()
    assert (f"left at the pace of the 1 unit recorded before on {describe_device('cpu')} (1 "
            "recorded on other devices left out)") in " ".join(capsys.readouterr().out.split())


def test_a_storage_error_or_a_shortage_of_memory_on_an_actor_reaches_the_driver_as_itself():
    from erasebench.ray_backend import as_raised_here

    def fill():
        raise OSError(errno.ENOSPC, "No space left on device", "/cache/images/x.png")

    def short_of_memory():
        raise OutOfDeviceMemory("uce x imagenette [split 1] (1a2b)", "on cuda making its "
                                "erasure: CUDA out of memory", "a note")

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(ray.exceptions.RayTaskError) as raised:
            ray.get(ray.remote(fill).remote())
        with pytest.raises(ray.exceptions.RayTaskError) as raised_too:
            ray.get(ray.remote(short_of_memory).remote())
    finally:
        ray.shutdown()
    error = as_raised_here(raised.value)  # as the local backend would raise it
    assert type(error) is OSError and error.errno == errno.ENOSPC
    assert error.filename == "/cache/images/x.png"
    memory = as_raised_here(raised_too.value)  # the one line a local run gives, not Ray's
    assert type(memory) is OutOfDeviceMemory and memory.unit.startswith("uce x imagenette")
    assert str(memory).startswith("uce x imagenette [split 1] (1a2b) ran out of memory on cuda")
    assert as_raised_here(ValueError("a bug")).args == ("a bug",)  # the rest as they come


@pytest.mark.parametrize(("device", "workers", "resources", "expected"), [
    ("auto", None, {"GPU": 8.0, "CPU": 96.0}, ("cuda", 8)),  # one actor per GPU
    ("auto", None, {"CPU": 6.0}, ("cpu", 6)),  # per CPU on a cluster without GPUs
    ("cpu", None, {"GPU": 8.0, "CPU": 96.0}, ("cpu", 96)),
    ("cuda", 3, {"GPU": 8.0, "CPU": 96.0}, ("cuda", 3)),  # --workers as given
    ("auto", None, {}, ("cpu", 1)),
])
def test_the_clusters_resources_set_the_default_device_and_actors(
        device, workers, resources, expected):
    from erasebench.ray_backend import cluster_defaults

    assert cluster_defaults(device, workers, resources) == expected


@pytest.mark.parametrize(("device", "message"), [
    ("cuda", "--device cuda on a Ray cluster without a GPU (it has 4 CPUs)"),
    ("cuda:1", "--device cuda:1 on Ray: each actor holds a GPU of its own"),
])
def test_a_device_the_cluster_cannot_give_is_a_clear_error(device, message):
    from erasebench.errors import UserError
    from erasebench.ray_backend import cluster_defaults

    with pytest.raises(UserError, match=re.escape(message)):
        cluster_defaults(device, None, {"CPU": 4.0})


@pytest.mark.parametrize(("device", "resources", "kinds"), [
    ("cuda", {"GPU": 16.0, "accelerator_type:H100": 1.0, "accelerator_type:A100": 1.0},
     "2 kinds (A100, H100)"),
    ("cuda", {"GPU": 16.0, "accelerator_type:H100": 2.0}, None),  # two nodes, one kind
    ("cpu", {"CPU": 96.0, "GPU": 16.0, "accelerator_type:H100": 1.0,
             "accelerator_type:A100": 1.0}, None),  # the units run on the CPUs
    ("cuda", {"GPU": 8.0}, None),  # a kind Ray does not name
])
def test_a_cluster_mixing_kinds_of_gpu_is_warned_of(device, resources, kinds):
    from erasebench.ray_backend import mixed_gpus_warning

    warning = mixed_gpus_warning(device, resources)
    if kinds is None:
        assert warning is None
    else:
        assert f"the cluster's GPUs are of {kinds}" in warning
        assert "start the cluster's nodes on one kind of GPU" in warning


@pytest.mark.parametrize(("kind", "expected"), [
    ("H100", "cuda (NVIDIA H100 80GB HBM3)"),  # the most recorded of the two H100s
    ("A100", "cuda (NVIDIA A100-SXM4-80GB)"),
    ("RTX-PRO-6000", "cuda (NVIDIA RTX PRO 6000 Blackwell Server Edition)"),
    ("V100", None),  # none recorded
    ("H10", None),  # a part of a word is not the word
])
def test_records_are_matched_to_the_kind_of_gpu_ray_names(kind, expected):
    from erasebench.ray_backend import recorded_device_of_kind

    recorded = ["cpu (AMD EPYC 7763 64-Core Processor)", "cuda (NVIDIA H100 PCIe)",
                "cuda (NVIDIA H100 80GB HBM3)", "cuda (NVIDIA H100 80GB HBM3)",
                "cuda (NVIDIA A100-SXM4-80GB)",
                "cuda (NVIDIA RTX PRO 6000 Blackwell Server Edition)"]
    assert recorded_device_of_kind(recorded, kind) == expected


def test_a_dry_run_on_a_cluster_of_one_kind_of_gpu_prices_at_that_kinds_records(
        tmp_path, capsys, monkeypatch):
    # sd's and mock's units recorded, mock's as if on an H100; on a cluster of H100s the
    # dry run prices uce's unit at mock's unit's pace alone, and says the other was left out.
    from erasebench import ray_backend

    common = ["--model", "tiny", "--tasks", "mock", "--steps", "2",
              "--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache"),
              "--no-report"]
    _record_sd_and_mock_with_mock_on_an_h100(common, tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    cluster = {"CPU": 32.0, "GPU": 2.0, "accelerator_type:H100": 1.0}
    monkeypatch.setattr(ray_backend, "connect", lambda address, workers, here: cluster)
    capsys.readouterr()
    dry_run = ["run", "--erasers", "sd,mock,uce", "--backend", "ray", "--dry-run", *common]
    assert main(dry_run) == 0
    assert ("on 1 process, 8 images to draw (those no recorded unit asked for; --check-cache "
            "looks in the image cache), at the pace of the 1 recorded unit with timings, made "
            "on cuda (NVIDIA H100 80GB HBM3) (1 recorded on other devices left out)"
            ) in " ".join(capsys.readouterr().out.split())
    cluster["accelerator_type:A100"] = 1.0  # two kinds: every record's pace, as before
    assert main(dry_run) == 0
    assert "recorded on other devices left out" not in capsys.readouterr().out


def test_an_address_where_no_cluster_answers_is_a_clear_error_at_once(tmp_path, capsys,
                                                                      monkeypatch):
    # ray.init tried for minutes (over 5 on a closed port), its log lines the only word.
    import socket

    from erasebench.ray_backend import check_head_answers

    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    argv, results = _run(tmp_path, "x", "--backend", "ray", "--no-report")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: no Ray cluster answers at 127.0.0.1:{port} (RAY_ADDRESS): "
                          "Connection refused. Start its head there (`ray start --head --port "
                          f"{port}`: README, More than one GPU), or unset RAY_ADDRESS")
    monkeypatch.delenv("RAY_ADDRESS")
    assert main([*argv, "--ray-address", f"ray://127.0.0.1:{port}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"`ray start --head --ray-client-server-port {port}`" in err
    assert "or leave out --ray-address" in err
    assert not results.exists()
    with socket.create_server(("127.0.0.1", 0)) as head:  # one that answers, as a head's
        check_head_answers(f"127.0.0.1:{head.getsockname()[1]}", "RAY_ADDRESS")
    check_head_answers("auto", "RAY_ADDRESS")  # Ray's own to find


def test_an_unknown_backend_lists_the_valid_ones(tmp_path, capsys):
    argv, _ = _run(tmp_path, "x", "--backend", "slurm")
    assert main(argv) == 2
    assert "valid backends: local, ray" in capsys.readouterr().err


def test_more_actors_than_the_cluster_has_room_for_is_warned_of(tmp_path, capsys, monkeypatch):
    from erasebench import ray_backend
    from erasebench.runner import RunSummary

    # A cluster of 3 CPUs asked for 4 actors: the fourth would wait for a node to join.
    monkeypatch.setattr(ray_backend, "connect", lambda address, workers, here: {"CPU": 3.0})
    monkeypatch.setattr(ray_backend, "run_on_ray", lambda units, *args: RunSummary())
    argv, _ = _run(tmp_path, "x", "--backend", "ray", "--workers", "4", "--no-report")
    assert main(argv) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: 4 Ray actors on cpu, but the cluster has room for 3 now" in err


def test_a_dry_run_on_a_cluster_prices_the_units_on_its_actors(tmp_path, capsys, monkeypatch):
    from erasebench import ray_backend

    argv, _ = _run(tmp_path, "x", "--no-report")  # sd's and uce's 4 units, timed
    assert main(argv) == 0
    # esd_x's and ca's 4 units left, on a cluster of 3 CPUs at RAY_ADDRESS.
    more = [*argv[:2], "sd,uce,esd_x,ca", *argv[3:], "--backend", "ray", "--dry-run"]
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    monkeypatch.setattr(ray_backend, "connect", lambda address, workers, here: {"CPU": 3.0})
    capsys.readouterr()
    assert main(more) == 0
    assert " on 3 processes, " in capsys.readouterr().out.splitlines()[-1]
    monkeypatch.delenv("RAY_ADDRESS")  # no cluster to count: this machine's processes
    assert main([*more, "--workers", "2"]) == 0
    assert " on 2 processes, " in capsys.readouterr().out.splitlines()[-1]


def test_a_training_resumed_on_an_actor_is_told_by_the_driver(tmp_path, capsys):
    # A local run killed in the middle of ESD-x's training left its checkpoint; the Ray
    # run's actor resumes it, and the driver says so as the local run's process would.
    import os

    from cli_processes import exit_code, start_cli

    args = ["run", "--model", "tiny", "--erasers", "esd_x", "--tasks", "mock",
            "--task-config", "images_per_concept=2", "--steps", "3", "--batch-size", "2",
            "--eraser-config", "iterations=6", "--results", str(tmp_path / "results"),
            "--cache", str(tmp_path / "cache"), "--no-report"]
    log = tmp_path / "killed.log"
    killed = start_cli([*args, "--workers", "1", "--checkpoint-every", "0"], log,
                       {**os.environ, ENVIRONMENT_VARIABLE: "train.step:4"})
    assert exit_code(killed) == -9, log.read_text()[-2000:]
    capsys.readouterr()
    try:
        assert main([*args, "--backend", "ray", "--workers", "1"]) == 0
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    (told,) = [line for line in out.splitlines() if "[training]" in line]
    assert "esd_x x mock" in told
    assert told.endswith("esd_x training: resumed at step 5 of 6 from its checkpoint")
    assert out.index("[training]") < out.index("[done]"), "told before its unit's end"


def test_a_stopped_ray_run_lets_its_actors_trainings_save_their_checkpoints(tmp_path):
    # SIGTERM to the driver (a Slurm job requeued, Ctrl-C): the actor training ESD-x ends
    # its step and saves its checkpoint, as a local run's process does at a signal, instead
    # of losing what it trained since its last periodic one (--checkpoint-every, 10 min).
    import os
    import signal
    import time

    from cli_processes import exit_code, start_cli

    from erasebench.training_checkpoints import _read

    cache = tmp_path / "cache"
    args = ["run", "--model", "tiny", "--erasers", "esd_x", "--tasks", "mock",
            "--task-config", "images_per_concept=2", "--steps", "3",
            "--eraser-config", "iterations=100000", "--results", str(tmp_path / "results"),
            "--cache", str(cache), "--no-report", "--backend", "ray", "--workers", "1"]
    log = tmp_path / "run.log"
    run = start_cli(args, log)
    started = time.monotonic()
    while not list((cache / "edits").glob("esd_x-*.claim")):  # the actor took the erasure
        assert run.is_alive() and time.monotonic() - started < 120, log.read_text()[-2000:]
        time.sleep(0.2)
    time.sleep(3.0)  # in its training now
    os.kill(run.pid, signal.SIGTERM)
    assert exit_code(run) == 128 + signal.SIGTERM, log.read_text()[-2000:]
    said = " ".join(log.read_text().split())
    stopping = re.search(r"\[training\] esd_x x mock .*: esd_x training: stopping after step "
                         r"(\d+) of 100000, saved for the next start to resume from", said)
    assert stopping is not None, said[-2000:]
    assert "stopped (SIGTERM)" in said
    (saved,) = (cache / "edits" / "training").glob("esd_x-*.loop-0.safetensors")
    assert _read(saved)["next_step"] == int(stopping.group(1))
