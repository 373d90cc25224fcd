"""Checkpoints of an eraser's training, so that an erasure stopped half-way resumes.

A run stopped during an erasure (a Slurm time limit or preemption, Ctrl-C, a lost node)
used to make it again from its first step on the next start: up to AGE's 42 minutes of an
H100 for one erasure of SD. Now the runner names a place for the erasure's checkpoints
(:func:`checkpointing`, beside its entry in the edit cache), and a training loop
(:func:`erasebench.baselines.common.train_loop`) that declares every state its steps
change saves it there every ``every`` seconds and when the run is told to stop, and on
the next start loads it and goes on from the step after. The state: the trained
parameters and Adam's moments always, plus what the loop declares in a
:class:`TrainingState` (its random generators, and objects such as AP's concept search
with ``state_dict``/``load_state_dict``). A loop that declares nothing is never
checkpointed: resumed from its parameters alone it would make another erasure than the
one never stopped, where a resumed loop makes the same one (bit for bit on a CPU).

An erasure's loops (MACE trains one per concept) are numbered in the order they run, a
file each; the runner removes them once the erasure is in the edit cache. A checkpoint
whose loop no longer matches (other steps, learning rate, parameter shapes or declared
state) is left unused and overwritten. The files are safetensors, the rest of the state
JSON in their metadata: no pickle, as for every weight file erasebench reads.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from erasebench.io import atomic_write, read_safetensors

if TYPE_CHECKING:  # torch is imported where used: the CLI reads DEFAULT_EVERY without it
    import torch

FORMAT = "erasebench.training-checkpoint/1"
DEFAULT_EVERY = 600.0  # seconds between a loop's checkpoints (--checkpoint-every)


class Stateful(Protocol):
    """An object a training loop's steps change, saved and restored as torch modules and
    optimisers are: tensors, and numbers, strings, lists and dicts of them."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass
class TrainingState:
    """What a training loop's steps change besides its parameters and Adam's moments: the
    random generators they draw from, and other objects they update (by name)."""

    generators: Sequence[torch.Generator] = ()
    objects: Mapping[str, Stateful] = field(default_factory=dict)


@dataclass
class CheckpointPlace:
    """Where one erasure's training loops keep their checkpoints (``<stem>.loop-<n>.
    safetensors``), how often they save them, and whom they tell of a resume or a save
    before a stop (``say``)."""

    stem: Path
    every: float = DEFAULT_EVERY
    say: Callable[[str], None] | None = None
    loops: int = 0  # loops started so far in this erasure
    # Seconds the erasure took in the processes before, up to the checkpoint resumed from.
    resumed_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def tell(self, text: str) -> None:
        if self.say is not None:
            self.say(text)

    def next_loop(self) -> Path:
        path = self.stem.with_name(f"{self.stem.name}.loop-{self.loops}.safetensors")
        self.loops += 1
        return path

    def files(self) -> list[Path]:
        return sorted(self.stem.parent.glob(f"{self.stem.name}.loop-*.safetensors"))

    def owns(self, name: str) -> bool:
        """Whether the file ``name`` (in the stem's folder) is one of these checkpoints, or
        the temp file of one being written (``erasebench.io.atomic_write``: a dot, then the
        checkpoint's name)."""
        prefix = f"{self.stem.name}.loop-"
        return name.startswith(prefix) or name.startswith(f".{prefix}")

    def remove(self) -> None:
        for path in self.files():
            path.unlink(missing_ok=True)


_place: ContextVar[CheckpointPlace | None] = ContextVar("checkpoint_place", default=None)


@contextlib.contextmanager
def checkpointing(place: CheckpointPlace) -> Iterator[CheckpointPlace]:
    """Within the block, the training loops that declare their state checkpoint at
    ``place``."""
    token = _place.set(place)
    try:
        yield place
    finally:
        _place.reset(token)


class LoopCheckpoint:
    """The checkpoint file of one training loop: what it resumes from, and when it saves."""

    def __init__(self, place: CheckpointPlace, description: str, steps: int,
                 parameters: Sequence[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                 state: TrainingState) -> None:
        self.place, self.path = place, place.next_loop()
        self.description, self.steps = description, steps
        self.parameters, self.optimizer, self.state = list(parameters), optimizer, state
        # What the file must match to be this loop's: its place in the erasure is its name.
        self.identity = {"description": description, "steps": steps,
                         "lr": [group["lr"] for group in optimizer.param_groups],
                         "shapes": [list(p.shape) for p in self.parameters],
                         "generators": len(state.generators), "objects": sorted(state.objects)}
        self.saved = time.perf_counter()

    def resume(self) -> tuple[int, list[float]]:
        """(the first step to run, the losses of the steps before it): from the file when
        there is one of this loop, its state loaded; else (0, [])."""
        import torch

        saved = _read(self.path)
        if saved is None or saved.get("identity") != self.identity:
            return 0, []
        with torch.no_grad():
            for parameter, value in zip(self.parameters, saved["parameters"], strict=True):
                parameter.copy_(value)
        self.optimizer.load_state_dict(saved["optimizer"])
        for generator, value in zip(self.state.generators, saved["generators"], strict=True):
            generator.set_state(value)
        for name, value in saved["objects"].items():
            self.state.objects[name].load_state_dict(value)
        self.place.resumed_seconds = float(saved["seconds"])
        step = int(saved["next_step"])
        self.place.tell(f"{self.description}: resumed at step {step + 1} of {self.steps} "
                       "from its checkpoint")
        return step, list(saved["losses"])

    def due(self) -> bool:
        return time.perf_counter() - self.saved >= self.place.every

    def save(self, next_step: int, losses: Sequence[float], stopping: bool = False) -> bool:
        """Saves the loop's state with ``next_step`` steps done (atomic: a stop during the
        write leaves the checkpoint before); ``stopping``: the run was told to stop. A
        checkpoint that cannot be written (a full disk) is said and skipped, and the
        training goes on: False."""
        seconds = self.place.resumed_seconds + time.perf_counter() - self.place.started
        try:
            _write(self.path, {
                "identity": self.identity, "next_step": next_step, "losses": list(losses),
                "seconds": seconds, "parameters": [p.detach() for p in self.parameters],
                "optimizer": self.optimizer.state_dict(),
                "generators": [g.get_state() for g in self.state.generators],
                "objects": {name: obj.state_dict()
                            for name, obj in self.state.objects.items()}})
        except OSError as error:
            self.place.tell(f"{self.description}: could not save its checkpoint after step "
                           f"{next_step} of {self.steps} ({error}); "
                           + ("stopping without" if stopping else "training goes on"))
            return False
        finally:
            self.saved = time.perf_counter()  # a failed write is tried again after `every`
        if stopping:
            self.place.tell(f"{self.description}: stopping after step {next_step} of "
                           f"{self.steps}, saved for the next start to resume from")
        return True


def loop_checkpoint(description: str, steps: int, parameters: Sequence[torch.nn.Parameter],
                    optimizer: torch.optim.Optimizer, state: TrainingState | None
                    ) -> LoopCheckpoint | None:
    """The checkpoint of a training loop starting now: None outside :func:`checkpointing`
    or where the loop declares no state."""
    place = _place.get()
    if place is None or state is None:
        return None
    return LoopCheckpoint(place, description, steps, parameters, optimizer, state)


# --- nested state in a safetensors file ----------------------------------------------------


def _write(path: Path, value: Any) -> Path:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    tree = _pack(value, tensors)
    metadata = {"format": FORMAT, "state": json.dumps(tree)}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata))


def _read(path: Path) -> Any | None:
    """The state saved at ``path``; None where there is none or it cannot be read (an
    unreadable checkpoint only costs the steps it held)."""
    if not path.is_file():
        return None
    try:
        tensors, metadata = read_safetensors(path)
        if metadata.get("format") != FORMAT:
            return None
        return _unpack(json.loads(metadata["state"]), tensors)
    except Exception:  # safetensors and json raise several types for a damaged file
        return None


def _pack(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON, its tensors moved to ``tensors`` (named by their order)."""
    import torch

    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().cpu().contiguous()
        return {"tensor": name}
    if isinstance(value, Mapping):  # keys kept as they are: Adam's state is keyed by ints
        return {"dict": [[key, _pack(item, tensors)] for key, item in value.items()]}
    if isinstance(value, tuple):
        return {"tuple": [_pack(item, tensors) for item in value]}
    if isinstance(value, list):
        return {"list": [_pack(item, tensors) for item in value]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"a training checkpoint keeps tensors, numbers, strings, lists and dicts; "
                    f"not {type(value).__name__}")


def _unpack(tree: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    (kind, value), = tree.items()
    if kind == "tensor":
        return tensors[value]
    if kind == "dict":
        return {key: _unpack(item, tensors) for key, item in value}
    if kind == "tuple":
        return tuple(_unpack(item, tensors) for item in value)
    if kind == "list":
        return [_unpack(item, tensors) for item in value]
    return value
