"""EditedModel: what an eraser changed, as new values of the parameters it touched.

It stores only those parameters (safetensors), plus the eraser's name, config and the
request, and the fingerprint of the base model it was computed on (with its name, to say
which model to load where it meets another). It can be applied to and removed from a
model in place, saved, loaded (integrity-checked) and exported as a plain diffusers folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from erasebench.errors import CorruptFileError, UserError
from erasebench.io import atomic_write
from erasebench.models import DiffusionModel, tensor_bytes
from erasebench.specs import ErasureRequest, ModelSpec

FORMAT = "erasebench.edit/1"


def fingerprint_with_edit(base_fingerprint: str, digest: str | None) -> str:
    """The fingerprint of a base model with an edit of this digest applied; None, an edit
    that changes nothing, leaves it the base model's (``sd`` shares its cached images)."""
    if digest is None:
        return base_fingerprint
    return hashlib.sha256(f"{base_fingerprint}+{digest}".encode()).hexdigest()


def _model_named(spec: ModelSpec | None, fingerprint: str) -> str:
    """A model as an error names it: ``'CompVis/stable-diffusion-v1-4' (1a2b3c4d5e6f)``,
    the fingerprint alone where the name is not known."""
    short = fingerprint[:12]
    if spec is None:
        return short
    revision = f" at {spec.revision}" if spec.revision else ""
    return f"{spec.id!r}{revision} ({short})"


@dataclass
class EditedModel:
    """New values for the parameters an eraser changed, with the provenance to rebuild it."""

    eraser: str
    config: dict[str, Any]
    request: ErasureRequest
    base_fingerprint: str
    weights: dict[str, torch.Tensor]  # qualified name ("unet.…weight") -> new value
    # What the eraser found on the way (e.g. AP's search history); JSON, not in the digest.
    notes: dict[str, Any] = field(default_factory=dict)
    # How long the eraser took to make it, and on what device (``runner.timed_erase`` sets
    # them; None and "" for an edit saved before erasebench kept them). Not in the digest.
    seconds: float | None = None
    device: str = ""
    # The base model as it was asked for (hub id or folder, revision; ``timed_erase`` sets
    # it, None for an edit saved before erasebench kept it), to name it where the edit
    # meets another model; the fingerprint, not this, says which model it fits. Not in
    # the digest.
    base_model: ModelSpec | None = None
    _originals: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def from_changes(cls, model: DiffusionModel, before: dict[str, torch.Tensor], *,
                     eraser: str, config: dict[str, Any],
                     request: ErasureRequest) -> EditedModel:
        """Keeps the parameters of ``model`` that differ from their snapshot in ``before``."""
        changed = {
            name: parameter.detach().to("cpu").clone()
            for name, parameter in model.named_parameters()
            if name in before and not torch.equal(parameter.detach().to("cpu"), before[name])
        }
        return cls(eraser, config, request, model.fingerprint, changed)

    @functools.cached_property
    def digest(self) -> str:
        """sha256 over names and values: identifies the edit and checks its integrity.
        Hashed once: every :meth:`apply` names the edited model by it, and the robustness
        task applies an edit three times per class and radius (ESD-u's 3.3 GB of SD
        weights took about 2.5 s a hash). An edit's weights are not changed once made."""
        digest = hashlib.sha256()
        for name in sorted(self.weights):
            digest.update(name.encode())
            digest.update(str(self.weights[name].dtype).encode())
            digest.update(tensor_bytes(self.weights[name]))
        return digest.hexdigest()

    def edited_fingerprint(self) -> str:
        return fingerprint_with_edit(self.base_fingerprint, self.digest if self.weights else None)

    # -- apply / remove ----------------------------------------------------------------
    def apply(self, model: DiffusionModel) -> DiffusionModel:
        """Writes the new values into ``model`` in place (remembering the old ones)."""
        if self._originals:
            raise RuntimeError("this edit is already applied; remove() it first")
        if model.fingerprint != self.base_fingerprint:
            made_on = _model_named(self.base_model, self.base_fingerprint)
            raise UserError(f"edit by {self.eraser!r} was made on model {made_on}, not on this "
                            f"one, {_model_named(model.spec, model.fingerprint)}; load the "
                            f"model it was made on{self._base_options()}")
        with torch.no_grad():
            for name, value in self.weights.items():
                parameter = model.parameter(name)
                self._originals[name] = parameter.detach().clone()
                parameter.copy_(value.to(parameter.device, parameter.dtype))
        model.set_fingerprint(self.edited_fingerprint())
        return model

    def remove(self, model: DiffusionModel) -> DiffusionModel:
        with torch.no_grad():
            for name, value in self._originals.items():
                model.parameter(name).copy_(value)
        self._originals.clear()
        model.set_fingerprint(self.base_fingerprint)
        return model

    @contextmanager
    def applied(self, model: DiffusionModel) -> Iterator[DiffusionModel]:
        self.apply(model)
        try:
            yield model
        finally:
            self.remove(model)

    def _base_options(self) -> str:
        if self.base_model is None:
            return ""
        revision = f" --revision {self.base_model.revision}" if self.base_model.revision else ""
        return f" (--model {self.base_model.id}{revision})"

    # -- files -----------------------------------------------------------------------------
    def metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "eraser": self.eraser,
            "config": json.dumps(self.config, sort_keys=True),
            "request": self.request.canonical(),
            "base_fingerprint": self.base_fingerprint,
            "digest": self.digest,
            "notes": json.dumps(self.notes, sort_keys=True),
            "seconds": "" if self.seconds is None else repr(self.seconds),
            "device": self.device,
            "base_model": "" if self.base_model is None else self.base_model.canonical(),
        }

    def save(self, path: str | Path) -> Path:
        """One safetensors file, written atomically; the metadata carries the provenance."""
        from safetensors.torch import save_file

        tensors = {name: value.contiguous() for name, value in self.weights.items()}
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), self.metadata()))

    @staticmethod
    def fingerprint_in(path: str | Path) -> str | None:
        """The fingerprint of the model with the edit at ``path`` applied, from the file's
        header alone: its tensors are neither read nor checked (a run checks them when it
        loads the edit). None where there is no readable edit."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                changes = bool(list(handle.keys()))
        except Exception:  # absent or damaged: safetensors raises several types
            return None
        if metadata.get("format") != FORMAT or "base_fingerprint" not in metadata:
            return None
        return fingerprint_with_edit(metadata["base_fingerprint"],
                                     metadata.get("digest", "") if changes else None)

    @classmethod
    def load(cls, path: str | Path) -> EditedModel:
        """Loads and verifies an edit; a truncated or altered file raises CorruptFileError."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise UserError(f"edit file {str(path)!r} does not exist")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                weights = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except Exception as error:  # safetensors raises several types for a damaged file
            raise CorruptFileError(f"edit file {str(path)!r} is unreadable: {error}") from error
        if metadata.get("format") != FORMAT:
            raise CorruptFileError(f"{str(path)!r} is not an erasebench edit ({FORMAT})")
        edit = cls(
            eraser=metadata["eraser"],
            config=json.loads(metadata["config"]),
            request=ErasureRequest.model_validate_json(metadata["request"]),
            base_fingerprint=metadata["base_fingerprint"],
            weights=weights,
            notes=json.loads(metadata.get("notes", "{}")),
            seconds=float(metadata["seconds"]) if metadata.get("seconds") else None,
            device=metadata.get("device", ""),
            base_model=(ModelSpec.model_validate_json(metadata["base_model"])
                        if metadata.get("base_model") else None),
        )
        if edit.digest != metadata["digest"]:
            raise CorruptFileError(f"edit file {str(path)!r} fails its checksum")
        return edit

    def export(self, model: DiffusionModel, folder: str | Path) -> Path:
        """A plain diffusers folder of the edited model (``StableDiffusionPipeline`` loads it)."""
        with self.applied(model):
            return model.save_pretrained(folder)


def snapshot(model: DiffusionModel, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """CPU copies of parameters, to diff against after an eraser has trained in place."""
    wanted = None if names is None else set(names)
    return {
        name: parameter.detach().to("cpu").clone()
        for name, parameter in model.named_parameters()
        if wanted is None or name in wanted
    }
