"""All-but-One does what its objective says, on the miniature world's model: the concept's
guidance direction moves to the alternative's, the unconditional score stays put."""

import torch

from erasebench.baselines.all_but_one import AllButOne
from erasebench.models import load_model
from erasebench.specs import ErasureRequest, ModelSpec


def test_the_guidance_direction_moves_to_the_alternative_and_the_unconditional_stays():
    model = load_model(ModelSpec(id="shapes"))
    generator = torch.Generator().manual_seed(0)
    x_t = torch.randn(16, model.unet.config.in_channels, 8, 8, generator=generator)
    t = torch.tensor(400)
    with torch.no_grad():
        texts = model.encode_text(["", "a red circle", "a red square"])

    def scores():
        with torch.no_grad():
            out = model.unet(x_t.repeat(3, 1, 1, 1), t,
                             encoder_hidden_states=texts.repeat_interleave(16, 0)).sample
        empty, circle, square = out.chunk(3)
        return empty, circle - empty, square - empty

    empty, circle, square = scores()
    edit = AllButOne(preset="shapes").erase(
        model, ErasureRequest(concepts=("circle",), anchors=("square",)))
    with edit.applied(model):
        empty_after, circle_after, _ = scores()
    mse = torch.nn.functional.mse_loss
    before = float(mse(circle, square))
    assert float(mse(circle_after, square)) < 0.5 * before, "guidance re-aimed at 'square'"
    assert float(mse(empty_after, empty)) < 0.1 * before, "ε(∅) barely drifts"
