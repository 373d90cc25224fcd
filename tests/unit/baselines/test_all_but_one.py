"""All-but-One does what its objective says, on the miniature world's model: the concept's
guidance direction moves to the alternative's, the unconditional score stays put."""

import pytest
import torch

from erasebench.baselines.all_but_one import AllButOne
from erasebench.models import load_model
from erasebench.specs import ErasureRequest, ModelSpec


@pytest.fixture(scope="module")
def shapes():
    return load_model(ModelSpec(id="shapes"))


def test_the_guidance_direction_moves_to_the_alternative_and_the_unconditional_stays(shapes):
    generator = torch.Generator().manual_seed(0)
    x_t = torch.randn(16, shapes.unet.config.in_channels, 8, 8, generator=generator)
    with torch.no_grad():
        texts = shapes.encode_text(["", "circle", "square"])

    def scores(t):
        with torch.no_grad():
            out = shapes.unet(x_t.repeat(3, 1, 1, 1), torch.tensor(t),
                              encoder_hidden_states=texts.repeat_interleave(16, 0)).sample
        empty, circle, square = out.chunk(3)
        return empty, circle - empty, square - empty

    before = {t: scores(t) for t in (100, 400)}
    edit = AllButOne(preset="shapes").erase(
        shapes, ErasureRequest(concepts=("circle",), anchors=("square",)))
    mse = torch.nn.functional.mse_loss
    with edit.applied(shapes):
        for t, (empty, circle, square) in before.items():
            empty_after, circle_after, _ = scores(t)
            gap = float(mse(circle, square))
            assert float(mse(circle_after, square)) < 0.5 * gap, f"not re-aimed at t={t}"
            assert float(mse(empty_after, empty)) < 0.25 * gap, f"ε(∅) drifted at t={t}"
