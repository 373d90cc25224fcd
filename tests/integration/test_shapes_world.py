"""On the miniature world the metrics tell erasers apart: the original model draws, a
destructive edit is caught, and every in-tree eraser (with its ``shapes`` preset) erases.

Reduced sizes (one split, 10 images per shape) keep this file near two CPU minutes.
"""

import pytest
import torch

from erasebench.edits import EditedModel
from erasebench.models import load_model
from erasebench.plugins import Eraser
from erasebench.registry import ERASERS
from erasebench.results import load_results
from erasebench.runner import Runner, plan
from erasebench.specs import ErasureRequest, ModelSpec
from erasebench.tasks.shapes.objects import DEFAULT_SPLITS, ShapesObjects

SPLIT = DEFAULT_SPLITS[0]


class ZeroCrossAttention(Eraser):
    """A deliberately destructive 'eraser': the text no longer reaches the image."""

    name = "zero_cross_attention"

    def erase(self, model, request: ErasureRequest) -> EditedModel:
        weights = {name: torch.zeros_like(p.detach().cpu()) for name, p in model.named_parameters()
                   if ".attn2.to_v." in name}
        return EditedModel(self.name, {}, request, model.fingerprint, weights)


@pytest.fixture(scope="module")
def shapes_runner(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes_world")
    runner = Runner(root / "results", root / "cache", device="cpu", batch_size=100,
                    progress=False)
    runner._models[ModelSpec(id="shapes")] = load_model(ModelSpec(id="shapes"))
    return runner


def objects_scores(runner, eraser, splits=(SPLIT,)) -> dict[str, float]:
    task = ShapesObjects({"splits": [list(s) for s in splits], "images_per_class": 10})
    units = plan([eraser], [task])
    runner.run(units)
    frame = load_results(runner.results_dir)
    frame = frame[frame.run_id.isin([u.run_id for u in units])]
    return frame.groupby("metric")["value"].mean().to_dict()


def test_the_original_model_draws_every_shape(shapes_runner):
    scores = objects_scores(shapes_runner, ERASERS.get("sd")())
    assert scores["PSR-1"] >= 90 and scores["ESR-1"] <= 10


def test_a_destructive_edit_gets_high_esr_and_low_psr(shapes_runner):
    scores = objects_scores(shapes_runner, ZeroCrossAttention())
    assert scores["ESR-1"] >= 70 and scores["PSR-1"] <= 40


@pytest.mark.parametrize("name", ["uce", "esd_x", "esd_u", "ca", "mace"])
def test_every_eraser_erases_its_shapes(shapes_runner, name):
    scores = objects_scores(shapes_runner, ERASERS.get(name)(preset="shapes"))
    assert scores["ESR-1"] >= 80, scores


# The methods of the second group, at floors under what they measured on this split (ap
# 85 and all_but_one 43 at 20 images per shape, age 77 at 30; baselines/README.md says why
# all_but_one erases less): each must still take its shapes away from sd's 0.
@pytest.mark.parametrize("name, floor", [("ap", 70), ("age", 70), ("all_but_one", 25)])
def test_the_preserving_erasers_erase_too(shapes_runner, name, floor):
    scores = objects_scores(shapes_runner, ERASERS.get(name)(preset="shapes"))
    assert scores["ESR-1"] >= floor, scores
