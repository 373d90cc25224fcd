"""``erasebench run --backend ray``: the work units on a Ray cluster.

Each Ray actor holds one :class:`~erasebench.runner.Runner` (so a worker loads a base
model once for all the units it runs) and one GPU, or one CPU on a machine without. Units
travel as their specs (JSON) and are rebuilt from the plugin registries on the worker,
so any installed eraser or task runs there as it would locally; every unit goes through
``Runner.run_unit``, with the same locks, atomic writes, caches and resumption as the
local backend, and therefore the same rows. The results and cache folders must be on a
file system every worker sees (one machine, or a shared mount on a cluster).

Before the first unit, the first actor looks in the caches for the driver
(``erasebench.cached_work.look_in_caches``): it loads the base models it would load for
its first unit anyway, on the device the units run on. The driver loads none: it may
have no GPU nor the memory for a model, and a model built from its config with random
weights (the tests', the benchmarks') draws other weights on a GPU than on a CPU, so
another fingerprint, which names the cache entries. Until it answers the other actors are
already at work, as a local run's helpers are while its main process looks.

``ray.init`` connects to ``RAY_ADDRESS`` (or ``--ray-address``) when set, and otherwise
starts a local cluster with one CPU per worker (and this machine's GPUs). ``--device
auto`` and the number of actors are then the cluster's (:func:`cluster_defaults`): a
head node without a GPU does not make a GPU cluster's units run on CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erasebench.errors import UserError
from erasebench.runner import RunSummary, WorkUnit
from erasebench.specs import RunSpec

if TYPE_CHECKING:
    from erasebench.cache_space import CacheSpace
    from erasebench.cached_work import CachedWork


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


class UnitWorker:
    """The body of one Ray actor: a Runner kept for the actor's life."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from erasebench import workers
        from erasebench.runner import Runner

        self.runner = Runner(progress=False, **settings)
        workers.use_cpu_threads(self.runner.device)

    def run(self, payload: str) -> tuple[str, str]:
        unit = unit_from_spec(payload)
        return unit.run_id, self.runner.run_unit(unit)

    def look_in_caches(self, payloads: list[str]) -> tuple[CachedWork, CacheSpace]:
        from erasebench.cached_work import look_in_caches

        return look_in_caches([unit_from_spec(payload) for payload in payloads], self.runner)


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
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            from erasebench import workers as local

            gpus = len(local.visible_gpus()) if here.startswith("cuda") else 0
            ray.init(num_cpus=workers or local.auto_workers(here), num_gpus=gpus,
                     include_dashboard=False, log_to_driver=False)
    return ray.cluster_resources()


def run_on_ray(units: Sequence[WorkUnit], settings: dict[str, Any], workers: int,
               on_unit: Callable[[WorkUnit, str], None] | None = None,
               on_cached: Callable[[CachedWork, CacheSpace], None] | None = None
               ) -> RunSummary:
    """Runs ``units`` on ``workers`` Ray actors of the cluster :func:`connect` joined;
    ``settings`` are the Runner's fields (results_dir, cache_dir, device, batch_size,
    show_unsafe, compile). ``on_unit`` hears of each unit as it ends, ``on_cached`` what
    the caches hold of the units' work before any."""
    import ray
    from ray.util import ActorPool

    settings = {key: str(value) if isinstance(value, Path) else value
                for key, value in settings.items()}
    gpu = str(settings.get("device", "cpu")).startswith("cuda")
    actor = ray.remote(num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1)(UnitWorker)
    actors: list[Any] = [actor.remote(settings) for _ in range(workers)]  # handles
    pool = ActorPool(actors)
    by_id = {unit.run_id: unit for unit in units}
    summary = RunSummary()
    payloads = [unit.spec.model_dump_json() for unit in units]
    # Asked first, so the first actor looks before it takes a unit; the others start theirs.
    looked = actors[0].look_in_caches.remote(payloads) if on_cached and units else None
    results = pool.map_unordered(lambda worker, payload: worker.run.remote(payload), payloads)
    try:
        if looked is not None and on_cached is not None:
            on_cached(*ray.get(looked))
        for run_id, status in results:
            getattr(summary, status).append(run_id)
            if on_unit is not None:
                on_unit(by_id[run_id], status)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, UserError):  # bad input: the same one line as locally
            raise error.cause from None
        raise
    return summary
