import numpy as np
import pytest
import torch

from erasebench.errors import UserError
from erasebench.tasks.shapes.classifier import (
    WEIGHTS,
    ShapeClassifier,
    classify,
    load_classifier,
    metadata_of,
    save_classifier,
    to_input,
)
from erasebench.tasks.shapes.render import balanced_batch


def test_committed_classifier_reads_fresh_renders():
    model = load_classifier()
    batch = balanced_batch(600, seed=424242)  # a seed training never saw
    logits = classify(model, batch.images)
    labels = {"shape": batch.shapes, "colour": batch.colours, "texture": batch.textures}
    for head, truth in labels.items():
        accuracy = (logits[head].argmax(1).numpy() == truth).mean()
        assert accuracy >= 0.98, (head, accuracy)
    assert metadata_of(WEIGHTS)["config"]["seed"] == 0  # provenance travels with the weights


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = ShapeClassifier(width=8).eval()
    save_classifier(model, tmp_path / "c.safetensors", {"note": "test"})
    loaded = load_classifier(tmp_path / "c.safetensors")
    images = balanced_batch(8, seed=0).images
    for head, value in classify(model, images).items():
        assert torch.equal(value, classify(loaded, images)[head])


def test_missing_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(UserError, match="train_classifier"):
        load_classifier(tmp_path / "nothing.safetensors")


def test_inputs_of_other_sizes_are_resized():
    images = np.zeros((2, 64, 64, 3), np.uint8)
    assert to_input(images).shape == (2, 3, 32, 32)
