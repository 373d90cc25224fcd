import itertools

import numpy as np
import pytest

from erasebench.tasks.shapes.render import (
    COLOURS,
    SHAPES,
    TEXTURES,
    balanced_batch,
    caption,
    random_spec,
    render,
    shape_mask,
    texture_mask,
)


def _spec(shape="circle", colour="red", texture="plain", **pose):
    spec = random_spec(np.random.default_rng(0), shape, colour, texture)
    return spec.__class__(**{**spec.__dict__, "centre": (0.5, 0.5), "scale": 0.33, "angle": 0.0,
                             **pose})


def test_same_seed_same_pixels_and_another_seed_other_pixels():
    a, b, c = balanced_batch(30, seed=3), balanced_batch(30, seed=3), balanced_batch(30, seed=4)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert not np.array_equal(a.images, c.images)


def test_classes_are_balanced():
    batch = balanced_batch(240, seed=0)
    assert batch.images.shape == (240, 32, 32, 3) and batch.images.dtype == np.uint8
    assert set(np.bincount(batch.shapes, minlength=10)) == {24}
    assert set(np.bincount(batch.colours, minlength=8)) == {30}
    assert set(np.bincount(batch.textures, minlength=3)) == {80}


def test_every_pair_of_shapes_is_told_apart_by_its_silhouette():
    masks = {shape: shape_mask(_spec(shape), 32) > 0.5 for shape in SHAPES}
    for a, b in itertools.combinations(SHAPES, 2):
        union = (masks[a] | masks[b]).sum()
        assert (masks[a] & masks[b]).sum() / union < 0.8, (a, b)
    assert all(20 < mask.sum() < 32 * 32 * 0.6 for mask in masks.values())


def test_the_shape_has_its_colour_and_the_background_stays_dark():
    for colour, rgb in COLOURS.items():
        image = render(_spec("square", colour), 32).astype(int)
        assert np.abs(image[16, 16] - np.array(rgb)).max() <= 1
        assert image[0, 0].max() < 60


def test_textures_mark_the_shape_and_plain_does_not():
    assert texture_mask(_spec(texture="plain"), 32).max() == 0
    for texture in ("striped", "dotted"):
        marked = texture_mask(_spec(texture=texture), 32)
        assert 0.1 < marked.mean() < 0.6
    striped, dotted = (texture_mask(_spec(texture=t), 32) for t in ("striped", "dotted"))
    assert np.abs(striped - dotted).mean() > 0.1


def test_captions_name_what_is_drawn_with_the_right_article():
    assert caption("circle", "red", "plain") == "a red circle"
    assert caption("star", "blue", "striped", template=1) == "an image of a striped blue star"
    assert caption("arrow", "orange", "plain", template=3) == "a photo of an orange arrow"
    batch = balanced_batch(50, seed=1)
    colours = list(COLOURS)
    for i, text in enumerate(batch.captions):
        assert SHAPES[batch.shapes[i]] in text and colours[batch.colours[i]] in text
        assert (TEXTURES[batch.textures[i]] in text) == (batch.textures[i] != 0)


@pytest.mark.parametrize("bad", [{"shape": "blob"}, {"colour": "mauve"}, {"texture": "wavy"}])
def test_unknown_attributes_name_the_valid_ones(bad):
    spec = _spec(**bad)
    with pytest.raises(ValueError, match="valid"):
        render(spec)
