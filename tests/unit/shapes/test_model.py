"""The committed miniature-world model draws what it is asked for."""

from erasebench.models import load_model
from erasebench.specs import ModelSpec
from erasebench.tasks.shapes.classifier import load_classifier
from erasebench.tasks.shapes.train_model import evaluate


def test_committed_model_follows_the_prompt_on_a_fresh_sample():
    model = load_model(ModelSpec(id="shapes"))
    assert model.native_size == 32
    # 80 images: every shape in every colour, seeds the training log's evaluation never used.
    scores = evaluate(model, load_classifier(), seed=777_000)
    assert scores["colour_acc"] >= 0.9
    assert scores["shape_acc"] >= 0.8
