"""``sd``: the original model, unedited. It gets a real row on every task."""

from __future__ import annotations

from erasebench.edits import EditedModel
from erasebench.models import DiffusionModel
from erasebench.plugins import Eraser
from erasebench.registry import register_eraser
from erasebench.specs import ErasureRequest


@register_eraser("sd")
class OriginalModel(Eraser):
    """No edit at all: the baseline every other eraser is compared against."""

    makes_edits = False

    def erase(self, model: DiffusionModel, request: ErasureRequest) -> EditedModel:
        return EditedModel(self.name, self.config.model_dump(mode="json"), request,
                           model.fingerprint, weights={})
