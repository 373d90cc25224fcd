"""The miniature world's tasks, scored on rendered pictures whose answers are known."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from erasebench.errors import UserError
from erasebench.plugins import ScoringContext
from erasebench.tasks.graph_metrics import asymmetry, delta_matrix, locality
from erasebench.tasks.shapes.graph import ShapesGraph
from erasebench.tasks.shapes.objects import DEFAULT_SPLITS, ShapesObjects
from erasebench.tasks.shapes.render import SHAPES, TEXTURES, random_spec, render
from erasebench.tasks.shapes.scoring import read_images
from erasebench.tasks.shapes.style import ShapesStyle


def picture(shape: str, seed: int, texture: str = "plain", colour: str = "red") -> Image.Image:
    spec = random_spec(np.random.default_rng(seed), shape, colour, texture)
    return Image.fromarray(render(spec))


def context(references=None) -> ScoringContext:
    return ScoringContext(device="cpu", reference_images=lambda prompts: references,
                          encode_text=None)


def test_objects_splits_mirror_imagenette_and_prompts_do_not_depend_on_the_split():
    task = ShapesObjects()
    requests = task.requests()
    assert len(requests) == 4 and all(len(r.concepts) == 5 for r in requests)
    assert set(DEFAULT_SPLITS[0]) | set(DEFAULT_SPLITS[1]) == set(SHAPES)
    assert not set(DEFAULT_SPLITS[2]) & set(DEFAULT_SPLITS[3])
    first, second = (task.prompts(r) for r in requests[:2])
    assert [(p.text, p.seed) for p in first] == [(p.text, p.seed) for p in second]
    assert {p.label for p in first if p.group == "erase"} == set(requests[0].concepts)
    assert len(first) == 10 * task.options.images_per_class


def test_objects_scores_hand_made_images():
    """Erased circle: 2 of 4 images still circles -> ESR-1 50; preserved square: 3 of 4 -> 75."""
    task = ShapesObjects({"splits": [["circle"]], "images_per_class": 4})
    request = task.requests()[0]
    prompts = [p for p in task.prompts(request) if p.label in ("circle", "square")]
    drawn = ["circle", "triangle", "circle", "star", "square", "square", "ring", "square"]
    images = [picture(shape, seed) for seed, shape in enumerate(drawn)]
    values = {v.metric: v.value for v in task.score(images, prompts, request, context())}
    assert values["ESR-1"] == pytest.approx(50.0)
    assert values["PSR-1"] == pytest.approx(75.0)
    assert values["ESR-1/circle"] == pytest.approx(50.0)
    assert values["PSR-1/square"] == pytest.approx(75.0)
    assert set(values) <= set(task.metrics)


def test_objects_rejects_unknown_shapes_listing_the_valid_ones():
    with pytest.raises(UserError, match="unknown shapes.*circle, square"):
        ShapesObjects({"splits": [["circle", "hexagon"]]})


def test_style_rates_and_distances():
    task = ShapesStyle({"erase": ["striped"], "images_per_texture": 2})
    request = task.requests()[0]
    prompts = task.prompts(request)
    assert [p.group for p in prompts].count("erase") == 2
    images, references = [], []
    for seed, prompt in enumerate(prompts):
        texture, shape = prompt.label.split("/")
        reference = picture(shape, seed, texture)
        # the erased side loses its stripes (same pose), the retained side is untouched
        drawn = picture(shape, seed, "plain") if prompt.group == "erase" else reference
        images.append(drawn)
        references.append(reference)
    values = {v.metric: v.value for v in task.score(images, prompts, request,
                                                     context(references))}
    assert values["erased_texture_rate"] == 0.0
    assert values["retained_texture_rate"] == 100.0
    assert values["erased_shape_rate"] == 100.0
    assert values["distance_retained"] == 0.0
    expected = np.mean([np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() / 255
                        for a, b, p in zip(images, references, prompts, strict=True)
                        if p.group == "erase"])
    assert values["distance_erased"] == pytest.approx(expected) and expected > 0


def test_graph_delta_row_and_locality():
    task = ShapesGraph({"erase": ["circle"], "images_per_class": 2})
    request = task.requests()[0]
    prompts = task.prompts(request)
    references = [picture(p.label, seed) for seed, p in enumerate(prompts)]
    # erased circles become triangles; one of the two squares becomes a star
    swaps = {0: "triangle", 1: "triangle", 2: "star"}
    images = [picture(swaps.get(i, p.label), i) for i, p in enumerate(prompts)]

    def encode(texts):  # square is the closest concept to circle, then the rest
        table = {name: float(i) for i, name in enumerate(SHAPES)}
        return torch.tensor([[[1.0, table.get(t, 0.0) ** 2 + 0.5]] for t in texts])

    scoring = ScoringContext("cpu", lambda prompts: references, encode_text=encode)
    values = {v.metric: v.value for v in task.score(images, prompts, request, scoring)}
    assert values["delta/circle"] == -100.0 and values["erased_drop"] == 100.0
    assert values["delta/square"] == -50.0 and values["delta/star"] == 0.0
    assert values["collateral"] == pytest.approx(50.0 / 9)
    # the only damage is on the most similar concept: a positive rank correlation
    assert values["locality"] > 0


def test_locality_is_spearmans_rho_with_tied_drops_sharing_their_rank_by_hand():
    similarity = np.array([0.1, 0.2, 0.3, 0.4])  # ranks 1, 2, 3, 4
    drop = np.array([0.0, 0.0, 10.0, 5.0])  # ranks 1.5, 1.5, 4, 3
    # Pearson of the ranks: deviations (-1.5, -0.5, 0.5, 1.5) and (-1, -1, 1.5, 0.5)
    assert locality(similarity, drop) == pytest.approx(3.5 / np.sqrt(5 * 4.5))
    assert locality(similarity, -drop) == pytest.approx(-3.5 / np.sqrt(5 * 4.5))
    assert locality(similarity, np.zeros(4)) is None  # nothing dropped: no ranking


def test_delta_matrix_and_asymmetry_by_hand():
    rows = pd.DataFrame({
        "eraser": "e", "request": ["circle", "circle", "square", "square"],
        "metric": ["delta/circle", "delta/square", "delta/circle", "delta/square"],
        "value": [-90.0, -10.0, -30.0, -80.0]})
    matrix = delta_matrix(rows, SHAPES)
    assert list(matrix.index) == ["circle", "square"]
    assert matrix.loc["circle", "square"] == -10.0
    assert asymmetry(matrix) == pytest.approx(20.0)  # |-10 - (-30)|
    assert "asymmetry 20" in ShapesGraph.report(rows)


def test_read_images_wants_the_miniature_worlds_size():
    with pytest.raises(UserError, match="--model shapes"):
        read_images([Image.new("RGB", (64, 64))])


def test_textures_are_read_from_renders():
    images = [picture("star", seed, texture) for seed, texture in enumerate(TEXTURES)]
    logits = read_images(images)
    assert [TEXTURES[i] for i in logits["texture"].argmax(1)] == list(TEXTURES)
