"""``erasebench run --backend ray``: the work units on a Ray cluster.

Each Ray actor holds one :class:`~erasebench.runner.Runner` (so a worker loads a base
model once for all the units it runs) and one GPU, or one CPU on a machine without. Units
travel as their specs (JSON) and are rebuilt from the plugin registries on the worker,
so any installed eraser or task runs there as it would locally; every unit goes through
``Runner.run_unit``, with the same locks, atomic writes, caches and resumption as the
local backend, and therefore the same rows on the same kind of device (a cluster mixing
kinds of GPU is warned of: :func:`mixed_gpus_warning`); once no unit is left to hand out, the actors
that end theirs help draw the images of those still running (``Runner.help``). The
results and cache folders must be on a file system every worker sees (one machine, or a
shared mount on a cluster), and every node must run the driver's erasebench: each actor
checks both before its first unit
(:meth:`UnitWorker._check_against_the_driver`). An actor that dies (a node lost or
preempted, a process killed) loses the unit it was running, which a new actor in its
place runs again (:data:`TRIES_PER_UNIT`), as a killed local helper's unit is run again
by the main process: its locks and the cache's claims end with it, or, on a network file
system, when the server's lease on them ends, which the unit's next try waits for
(:data:`LOST_UNIT_LOCK_WAIT_SECONDS`).

Before the first unit, the first actor looks in the caches for the driver
(``erasebench.cached_work.look_in_caches``): it loads the base models it would load for
its first unit anyway, on the device the units run on. The driver loads none: it may
have no GPU nor the memory for a model, and a model built from its config with random
weights (the tests', the benchmarks') draws other weights on a GPU than on a CPU, so
another fingerprint, which names the cache entries. Until it answers the other actors are
already at work, as a local run's helpers are while its main process looks. It names its
device too (``erasebench.hardware.describe_device``), which the driver's time left takes
the pace of earlier runs on (``RunProgress.learn_pace_on``): the driver's own device says
nothing of the actors'.

``ray.init`` connects to ``RAY_ADDRESS`` (or ``--ray-address``) when set, and otherwise
starts a local cluster with one CPU per worker (and this machine's GPUs). ``--device
auto`` and the number of actors are then the cluster's (:func:`cluster_defaults`): a
head node without a GPU does not make a GPU cluster's units run on CPUs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erasebench.errors import OutOfDeviceMemory, UserError
from erasebench.memory import free_device_memory
from erasebench.runner import RunSummary, WorkUnit
from erasebench.specs import RunSpec
from erasebench.stopping import Stopped, keeping_signal_handlers

if TYPE_CHECKING:
    from erasebench.cache_space import CacheSpace
    from erasebench.cached_work import CachedWork
    from erasebench.help_records import HelpRecord


def unit_from_spec(payload: str) -> WorkUnit:
    """A work unit rebuilt from its spec's JSON through the registries."""
    from erasebench.registry import ERASERS, TASKS

    spec = RunSpec.model_validate_json(payload)
    eraser = ERASERS.get(spec.eraser.name)(spec.eraser.config)
    task = TASKS.get(spec.task.name)(spec.task.options)
    unit = WorkUnit(spec, eraser, task)
    if unit.run_id != spec.run_id():  # a plugin that does not rebuild to the same spec
        raise UserError(f"{unit.describe()} does not rebuild to the same spec on the worker")
    return unit


def code_identity() -> str:
    """The erasebench this process runs: ``erasebench 0.1.0 at 1a2b3c4d5e6f`` (its commit,
    where it runs from a git checkout), ``… with changes 9f8e7d6c`` where its source has
    uncommitted changes (:mod:`erasebench.code_version`)."""
    from erasebench import __version__
    from erasebench.code_version import code_version

    code = code_version().short(12)
    return f"erasebench {__version__}" + (f" at {code}" if code else "")


class UnitWorker:
    """The body of one Ray actor: a Runner kept for the actor's life. ``driver_mark``:
    the file the driver left in the results folder's ``.locks`` (:func:`_leave_mark`),
    which the actor must see there, and ``driver_code`` the driver's
    :func:`code_identity`, which must be the actor's, before it runs a unit."""

    def __init__(self, settings: dict[str, Any], driver_mark: str | None = None,
                 driver_code: str | None = None, told: Any = None) -> None:
        from erasebench import workers
        from erasebench.runner import Runner

        self.runner = Runner(progress=False, **settings)
        workers.use_cpu_threads(self.runner.device)
        self.driver_mark, self.driver_code = driver_mark, driver_code
        self.checked = False  # against the driver, before the first unit
        self.told = told
        if told is not None:
            self.runner.on_training = self._tell_training

    def _tell_training(self, unit: WorkUnit, text: str) -> None:
        """``Runner.on_training`` on an actor: what a unit's training did with its
        checkpoint, for the driver to say (``ray.util.queue.Queue`` ``told``)."""
        with contextlib.suppress(Exception):  # the driver gone, its queue with it: nobody to tell
            self.told.put_nowait((unit.run_id, text))

    def run(self, payload: str, lock_wait: float = 0.0) -> tuple[str, str]:
        """(run id, status) of the unit ``payload`` names, run here; out of device memory,
        the error in words alone, after what the unit's frames held is freed (the actor
        goes on to other units, as a local run's process does)."""
        self._check_against_the_driver()
        unit = unit_from_spec(payload)
        try:
            return unit.run_id, self.runner.run_unit(unit, lock_wait)
        except OutOfDeviceMemory as error:
            short = error.alone()
        except Stopped:  # the driver stopped (stop): the training saved, the unit left undone
            return unit.run_id, STOPPED
        free_device_memory()
        raise short

    def stop(self) -> None:
        """The driver is stopping: the training in progress ends its step, saves its
        checkpoint and stops the unit (``stopping.request_stop``), as a local process's
        does at a signal. Called in the actor's ``control`` concurrency group, so that it
        runs while :meth:`run` is busy in the default one."""
        from erasebench.stopping import request_stop

        request_stop(signal.SIGTERM)

    def help(self, payloads: list[str]) -> dict[str, HelpRecord]:
        """Draws images of the units other actors are running (``Runner.help``): what an
        actor does once the driver has no unit left to hand it."""
        self._check_against_the_driver()
        return self.runner.help([unit_from_spec(payload) for payload in payloads])

    def _check_against_the_driver(self) -> None:
        """Stops the run where this actor's node runs other code than the driver's (the
        rows of one run would come from two versions of the benchmark), or does not see
        the driver's results folder (not mounted there, or elsewhere: the records written
        here would be missing from the results, with the run reporting them done)."""
        if self.checked:
            return
        here = code_identity()
        if self.driver_code is not None and self.driver_code != here:
            raise UserError(
                f"the Ray node {socket.gethostname()} runs {here}, the driver "
                f"{self.driver_code}: the rows of one run would come from two versions of "
                "the benchmark. Install the same erasebench on every node.")
        if self.driver_mark is not None and not self._sees(self.driver_mark):
            raise UserError(
                f"the results folder {self.runner.results_dir} on the Ray node "
                f"{socket.gethostname()} is not the driver's: the records of the units run "
                "there would be missing from the results. Put --results (and --cache) on a "
                "file system every node sees, at the same path (a shared mount: NFS, "
                "Lustre...).")
        self.checked = True

    def _sees(self, driver_mark: str) -> bool:
        mark = self.runner.results_dir / ".locks" / driver_mark
        for _ in range(MARK_LOOKS):  # a network file system may show a new file late
            if mark.is_file():
                return True
            time.sleep(1.0)
        return False

    def look_in_caches(self, payloads: list[str]) -> tuple[CachedWork, CacheSpace, str]:
        """What the caches hold of the units' work, what drawing the rest would take, and
        the device this actor runs them on (``erasebench.hardware.describe_device``)."""
        from erasebench.cached_work import look_in_caches
        from erasebench.hardware import describe_device

        units = [unit_from_spec(payload) for payload in payloads]
        return (*look_in_caches(units, self.runner), describe_device(self.runner.device))


def cluster_defaults(device: str, workers: int | None,
                     resources: Mapping[str, float]) -> tuple[str, int]:
    """The device the actors run units on and how many actors, for a cluster of
    ``resources`` (``ray.cluster_resources()``): ``auto`` is ``cuda`` on a cluster with a
    GPU, else ``cpu``; by default one actor per GPU on ``cuda``, per CPU on ``cpu``."""
    if device == "auto":
        device = "cuda" if int(resources.get("GPU", 0)) else "cpu"
    if device not in ("cuda", "cpu"):  # an actor sees the one GPU Ray gave it as cuda
        raise UserError(f"--device {device} on Ray: each actor holds a GPU of its own, "
                        "which it sees as 'cuda'; use --device cuda (or cpu, or auto)")
    if device == "cuda" and not actor_slots(device, resources):
        raise UserError(f"--device {device} on a Ray cluster without a GPU (it has "
                        f"{actor_slots('cpu', resources)} CPUs): start its nodes on GPU "
                        "machines, or run with --device cpu")
    return device, workers or max(1, actor_slots(device, resources))


def actor_slots(device: str, resources: Mapping[str, float]) -> int:
    """How many actors on ``device`` a cluster of ``resources`` has room for: its GPUs on
    ``cuda``, its CPUs on ``cpu``. An actor beyond them waits for a node to join, and so
    do the units handed to it."""
    return int(resources.get("GPU" if device.startswith("cuda") else "CPU", 0))


# Ray's resource naming a node's kind of GPU ("accelerator_type:H100"), one per such node.
GPU_KIND_RESOURCE_PREFIX = "accelerator_type:"


def gpu_kinds(resources: Mapping[str, float]) -> list[str]:
    """The kinds of GPU in a cluster (``resources``: ``ray.cluster_resources()``), as Ray
    names them from the cards' names ("H100", "A100", "RTX-PRO-6000"), sorted."""
    return sorted(key.removeprefix(GPU_KIND_RESOURCE_PREFIX) for key in resources
                  if key.startswith(GPU_KIND_RESOURCE_PREFIX))


def recorded_device_of_kind(devices: Iterable[str], kind: str) -> str | None:
    """Of the devices records name (``erasebench.hardware.describe_device``: "cuda (NVIDIA
    H100 80GB HBM3)"), the one of Ray's GPU ``kind``, whose name holds each of the kind's
    parts ("H100"; "RTX", "PRO", "6000") as a word; the most recorded where several do
    (an H100 PCIe and an H100 SXM are both Ray's "H100"); None where none does."""
    parts = {part.lower() for part in kind.split("-") if part}

    def words(device: str) -> set[str]:
        return {word.lower() for word in re.split(r"[^0-9A-Za-z]+", device) if word}

    matching = Counter(device for device in devices if parts and parts <= words(device))
    return matching.most_common(1)[0][0] if matching else None


def mixed_gpus_warning(device: str, resources: Mapping[str, float]) -> str | None:
    """A warning where the actors on ``device`` would run on more than one kind of GPU
    (``resources``: ``ray.cluster_resources()``), else None. A network's output, and so an
    image or an erasure, differs in its last bits from one kind of GPU to another, and an
    eraser's training can carry that into its numbers; each record names its device."""
    kinds = gpu_kinds(resources)
    if not device.startswith("cuda") or len(kinds) < 2:
        return None
    return (f"warning: the cluster's GPUs are of {len(kinds)} kinds ({', '.join(kinds)}): a "
            "unit's images and erasures depend in their last bits on the kind it runs on, "
            "and an eraser's training can carry that into its numbers (AP's erasures made on "
            "two kinds of CPU moved a unit's headline metric by up to 10 points: README, "
            "Guarantees); each record names its device. For rows that a run on one kind "
            "reproduces, start the cluster's nodes on one kind of GPU")


# Seconds a cluster's head has to accept a connection before the run says that none
# answers: ray.init itself tries for minutes, its log lines the only word of it.
HEAD_PROBE_SECONDS = 10.0


def check_head_answers(address: str, given_as: str) -> None:
    """A UserError where nothing accepts a connection at ``address`` (``host:port``, or
    ``ray://host:port`` for Ray Client; ``auto`` and ``local`` are Ray's to resolve),
    which ``given_as`` names (``RAY_ADDRESS``, ``--ray-address``)."""
    found = re.fullmatch(r"(ray://)?\[?([^\]]+?)\]?:(\d+)", address.strip())
    if found is None:
        return
    client, host, port = found.group(1), found.group(2), int(found.group(3))
    start = (f"ray start --head --ray-client-server-port {port}" if client
             else f"ray start --head --port {port}")
    without = "unset RAY_ADDRESS" if given_as == "RAY_ADDRESS" else f"leave out {given_as}"
    try:
        with socket.create_connection((host, port), timeout=HEAD_PROBE_SECONDS):
            pass
    except OSError as error:
        raise UserError(f"no Ray cluster answers at {address} ({given_as}): "
                        f"{error.strerror or str(error) or type(error).__name__}. Start its head "
                        f"there (`{start}`: README, More than one GPU), or {without} to "
                        "start a cluster on this machine") from None


def connect(address: str | None = None, workers: int | None = None,
            here: str = "cpu") -> Mapping[str, float]:
    """Connects to the Ray cluster at ``address`` (default: ``RAY_ADDRESS``), or starts a
    local one on this machine's cores and GPUs, as many of them as the local backend would
    use on ``here`` (the device as this machine resolves it: ``Runner.device``); returns
    the cluster's resources (``ray.cluster_resources()``), for :func:`cluster_defaults`
    and :func:`actor_slots`."""
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'erasebench[ray]'") from None
    if not ray.is_initialized():
        given_as = "--ray-address" if address else "RAY_ADDRESS"
        address = address or os.environ.get("RAY_ADDRESS")
        with keeping_signal_handlers():  # a time limit's SIGTERM: one line, no trace
            if address:
                check_head_answers(address, given_as)
                ray.init(address=address, log_to_driver=False)
            else:
                from erasebench import workers as local

                gpus = len(local.visible_gpus()) if here.startswith("cuda") else 0
                ray.init(num_cpus=workers or local.auto_workers(here), num_gpus=gpus,
                         include_dashboard=False, log_to_driver=False)
    return ray.cluster_resources()


# Seconds between the driver's looks at what the actors' trainings told (run_on_ray).
TOLD_EVERY_SECONDS = 1.0
# Seconds a stopping driver waits for its actors' trainings to save their checkpoints, as
# a local run waits for its helpers (erasebench.workers.stop).
STOP_GRACE_SECONDS = 60.0
# What UnitWorker.run returns for a unit the driver's stop ended.
STOPPED = "stopped"
# A unit whose actor dies (its node lost, its process killed) runs again on a new actor, up
# to this many tries in all; one whose actors keep dying stops the run with its name.
TRIES_PER_UNIT = 3
# Seconds an actor looks for the driver's mark in the results folder before it stops the
# run (UnitWorker._check_against_the_driver).
MARK_LOOKS = 5
# How long a unit run again waits for its lock (Runner.run_unit): on a network file system
# the lock of a node that was lost is held until the server's lease on it ends (90 s on
# Linux's NFS server by default); at once it would come back "busy" and be left undone.
LOST_UNIT_LOCK_WAIT_SECONDS = 150.0


def run_on_ray(units: Sequence[WorkUnit], settings: dict[str, Any], workers: int,
               on_unit: Callable[[WorkUnit, str], None] | None = None,
               on_cached: Callable[[CachedWork, CacheSpace, str], None] | None = None,
               on_lost: Callable[[WorkUnit, str, int], None] | None = None,
               on_help: Callable[[WorkUnit, HelpRecord], None] | None = None,
               help_others: bool = True,
               on_out_of_memory: Callable[[WorkUnit, OutOfDeviceMemory], None] | None = None,
               on_training: Callable[[WorkUnit, str], None] | None = None) -> RunSummary:
    """Runs ``units`` on ``workers`` Ray actors of the cluster :func:`connect` joined;
    ``settings`` are the Runner's fields (results_dir, cache_dir, device, batch_size,
    show_unsafe, compile, checkpoint_every). ``on_unit`` hears of each unit as it ends,
    ``on_cached`` what the caches hold of the units' work before any (and the device of
    the actor that looked: :meth:`UnitWorker.look_in_caches`), ``on_lost`` of a unit
    whose actor died (why, and the try it goes on to), which runs again on a new actor,
    as a killed local helper's unit does on the main process. With ``help_others``,
    actors left without a unit draw images of those running (``Runner.help``; the
    summary's ``helped``), and ``on_help`` hears what each did for a unit (the images it
    drew and their seconds), as each actor ends.
    A unit that runs out of its actor's device memory is left undone and the others go
    on, as in a local run (the summary's ``out_of_memory``; ``on_out_of_memory`` hears
    why). ``on_training`` hears, as it happens, what a unit's erasure did with its
    training's checkpoint on its actor (``Runner.on_training``: resumed from one)."""
    import ray

    # Folders as absolute paths: an actor's working folder is its node's, not the driver's.
    settings = {key: os.path.abspath(value) if key in ("results_dir", "cache_dir") else value
                for key, value in settings.items()}
    gpu = str(settings.get("device", "cpu")).startswith("cuda")
    # A "control" group of its own for UnitWorker.stop, which must run while a unit does;
    # the default group keeps one call at a time. (Ray's type hints omit the option.)
    actor = ray.remote(num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1,  # type: ignore[call-overload]
                       concurrency_groups={"control": 1})(UnitWorker)
    mark = _leave_mark(Path(settings["results_dir"]))
    code = code_identity()
    # The actors' training lines reach the driver through a queue, an actor asking for no
    # CPU (so that it never waits for one the units' actors hold); the driver looks in it
    # every second.
    told = None
    if on_training is not None:
        from ray.util.queue import Queue

        told = Queue(actor_options={"num_cpus": 0})

    def new_actor() -> Any:
        return actor.remote(settings, mark.name, code, told)

    def say_training() -> None:
        if told is None or on_training is None:
            return
        with _stops_as_themselves():
            count = told.qsize()
            said = told.get_nowait_batch(count) if count else []
        for run_id, text in said:
            on_training(by_id[run_id], text)

    idle: list[Any] = [new_actor() for _ in range(workers)]
    by_id = {unit.run_id: unit for unit in units}
    payloads = {run_id: unit.spec.model_dump_json() for run_id, unit in by_id.items()}
    # Asked first, so the first actor looks before it takes a unit; the others start theirs,
    # and get more as they finish, the look awaited with the units rather than before them.
    looked = (idle[0].look_in_caches.remote(list(payloads.values()))
              if on_cached and units else None)
    waiting, running = deque(by_id), {}  # running: task -> (actor, run id)
    helping: dict[Any, Any] = {}  # task -> actor, drawing images of the units running
    rested: list[Any] = []  # idle actors that helped since their last unit
    tries: Counter[str] = Counter()
    summary = RunSummary()

    def hand_out() -> None:
        while waiting and (idle or rested):
            worker, run_id = (idle or rested).pop(0), waiting.popleft()
            lock_wait = LOST_UNIT_LOCK_WAIT_SECONDS if tries[run_id] else 0.0
            running[worker.run.remote(payloads[run_id], lock_wait)] = (worker, run_id)
        # With no unit left to start, an actor that ends its unit helps those running, the
        # longest first (Runner.help); once: after that they have nothing left to draw.
        if help_others and not waiting and idle and running:
            in_flight = {run_id for _, run_id in running.values()}
            running_now = [payloads[run_id] for run_id in by_id if run_id in in_flight]
            for worker in idle:
                helping[worker.help.remote(running_now)] = worker
            idle.clear()

    def let_trainings_stop() -> None:
        """The run stopping, the actors running units are asked to stop (their trainings
        save their checkpoints, :meth:`UnitWorker.stop`), and waited for up to
        :data:`STOP_GRACE_SECONDS`; a second signal stops at once."""
        for worker, _ in running.values():
            with contextlib.suppress(Exception):  # an actor gone has nothing to save
                worker.stop.options(concurrency_group="control").remote()
        waiting_since = time.monotonic()
        left = list(running)
        while left and time.monotonic() - waiting_since < STOP_GRACE_SECONDS:
            done = _first_done(left, timeout=TOLD_EVERY_SECONDS)
            say_training()  # "stopping after step 412 of 1000, saved ..."
            left = [task for task in left if task not in done]

    hand_out()
    try:
        while running or helping or looked is not None:
            # The look is waited for with the units, so that actors done meanwhile get more.
            done = _first_done([*running, *helping, *([] if looked is None else [looked])],
                               timeout=None if told is None else TOLD_EVERY_SECONDS)
            say_training()  # before the end of the unit that trained
            if not done:
                continue
            [task] = done
            if task == looked:
                looked = None
                with contextlib.suppress(ray.exceptions.RayActorError):  # its unit says why
                    if on_cached is not None:
                        on_cached(*ray.get(task))
                continue
            if task in helping:
                worker = helping.pop(task)
                try:
                    for run_id, work in ray.get(task).items():
                        summary.helped[run_id] = summary.helped.get(run_id, 0) + work.images
                        if on_help is not None:
                            on_help(by_id[run_id], work)
                except ray.exceptions.RayActorError:  # its images are drawn by the others
                    worker = new_actor()
                rested.append(worker)
                hand_out()
                continue
            worker, run_id = running.pop(task)
            try:
                status = ray.get(task)[1]
            except ray.exceptions.RayActorError as error:
                tries[run_id] += 1
                why = _died_once_more(by_id[run_id], error, tries[run_id])
                if on_lost is not None:
                    on_lost(by_id[run_id], why, tries[run_id] + 1)
                waiting.appendleft(run_id)
                worker = new_actor()  # in the dead one's place
            except ray.exceptions.RayTaskError as error:
                short = getattr(error, "cause", None)
                if not isinstance(short, OutOfDeviceMemory):
                    raise
                summary.out_of_memory[run_id] = short
                if on_out_of_memory is not None:
                    on_out_of_memory(by_id[run_id], short)
            else:
                getattr(summary, status).append(run_id)
                if on_unit is not None:
                    on_unit(by_id[run_id], status)
            idle.append(worker)
            hand_out()
    except ray.exceptions.RayTaskError as error:
        raise as_raised_here(error) from None
    except Stopped:
        let_trainings_stop()
        raise
    finally:
        mark.unlink(missing_ok=True)
        if told is not None:
            with contextlib.suppress(Exception):  # Ray gone: no queue left to end, and the
                told.shutdown()  # error that ended the run is the one to raise
    return summary


def _leave_mark(results_dir: Path) -> Path:
    """A file of the driver's own in ``results_dir/.locks``, which every actor must see
    (:meth:`UnitWorker._check_against_the_driver`)."""
    mark = results_dir / ".locks" / f"ray-driver-{uuid.uuid4().hex}"
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.touch()
    return mark


def _first_done(tasks: list[Any], timeout: float | None = None) -> list[Any]:
    """The first of ``tasks`` (Ray object refs) to finish, in a list of one (``ray.wait``),
    or none after ``timeout`` seconds; a stop signal's :class:`~erasebench.stopping.
    Stopped` comes out as itself (:func:`_stops_as_themselves`)."""
    import ray

    with _stops_as_themselves():
        return ray.wait(tasks, num_returns=1, timeout=timeout)[0]


@contextlib.contextmanager
def _stops_as_themselves() -> Iterator[None]:
    """Within the block (a call into Ray that waits), :class:`~erasebench.stopping.Stopped`
    raised by the signal handler, which comes out of Ray as a SystemError around it, is
    raised as itself."""
    try:
        yield
    except SystemError as error:
        if isinstance(error.__context__, Stopped):
            raise error.__context__ from None
        raise


def _died_once_more(unit: WorkUnit, error: Exception, tries: int) -> str:
    """Where and how the actor running ``unit`` died (:func:`_why_it_died`), when the
    unit may go to a new actor; after :data:`TRIES_PER_UNIT` deaths, or an actor that
    could not start (no new one would either), the error that stops the run."""
    if getattr(error, "actor_init_failed", False):
        raise error
    why = _why_it_died(error)
    if tries >= TRIES_PER_UNIT:
        raise UserError(
            f"{unit.describe()} ({unit.run_id}): its Ray actor died {tries} times (the "
            f"last: {why}). The units recorded so far are kept, and the same command "
            "resumes; a process killed for memory each time needs fewer actors per node "
            "or a smaller --batch-size.") from None
    return why


def as_raised_here(error: Exception) -> BaseException:
    """The error a unit raised on its actor (``error``, Ray's wrapping of it), unwrapped
    where it is bad input, a storage error or the device out of memory, so that
    ``erasebench.cli.main`` says it in the one line a local run gets (a full disk: that the
    same command resumes)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, (UserError, OSError, OutOfDeviceMemory)) else error


def _why_it_died(error: Exception) -> str:
    """Where and how an actor died, from Ray's account, for one line: ``process 14523 on
    10.0.0.7, SYSTEM_ERROR`` (killed, crashed or its node lost), or that its node was
    preempted."""
    text = str(error)
    fields = dict(re.findall(r"^\s*(pid|ip): (\S+)$", text, re.MULTILINE))
    exit_type = re.search(r"exit type: (\w+)", text)
    parts = [f"process {fields.get('pid', '?')} on {fields.get('ip', '?')}",
             *([exit_type.group(1)] if exit_type else []),
             *(["its node preempted"] if getattr(error, "preempted", False) else [])]
    return ", ".join(parts)
