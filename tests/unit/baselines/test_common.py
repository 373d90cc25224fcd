"""The erasers' frozen weights held in autocast's precision during training: the same
outputs and edits, bit for bit, with fewer casts. On a CPU the erasers run in fp32, so these
tests turn on CPU bf16 autocast, whose casting rules for linear and convolution layers (and
fp32 norms) are CUDA's."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from erasebench import training_precision
from erasebench.baselines import common
from erasebench.registry import ERASERS
from erasebench.specs import ErasureRequest


class CountedCasts(TorchDispatchMode):
    """Counts the dtype casts torch dispatches (autocast's among them)."""

    def __init__(self) -> None:
        super().__init__()
        self.casts = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.casts += func is torch.ops.aten._to_copy.default
        return func(*args, **(kwargs or {}))


@pytest.fixture
def cpu_autocast(monkeypatch):
    """The erasers' autocast, and with it their frozen-weight casts, on a CPU in bf16."""
    monkeypatch.setattr(training_precision, "autocast_dtype",
                        lambda device, precision: None if precision == "fp32" else torch.bfloat16)


def _unet_call(model, generator_seed=0):
    generator = torch.Generator().manual_seed(generator_seed)
    latents = torch.randn(2, *common.latent_shape(model), generator=generator)
    context = torch.randn(2, 77, model.unet.config.cross_attention_dim, generator=generator)
    return model.unet(latents, torch.tensor(500), encoder_hidden_states=context).sample


def test_frozen_layer_weights_held_cast_give_the_same_outputs_with_fewer_casts(
        tiny, cpu_autocast):
    before = {name: p.detach().clone() for name, p in tiny.named_parameters()}
    trained = set(common.cross_attention_parameters(tiny))
    for name, parameter in tiny.named_parameters():
        parameter.requires_grad_(name in trained)
    try:
        with torch.no_grad(), training_precision.autocast(tiny.device, "bf16"):
            with CountedCasts() as as_autocast_casts:
                expected = _unet_call(tiny)
            with training_precision.frozen_weights_cast(tiny, "bf16"):
                held = dict(tiny.named_parameters())
                assert {held[name].dtype for name in trained} == {torch.float32}
                assert torch.bfloat16 in {p.dtype for p in held.values()}
                # GroupNorm and LayerNorm run in fp32 under autocast: their weights stay
                assert all(p.dtype == torch.float32 for name, p in held.items()
                           if ".norm" in name or "norm1" in name)
                with CountedCasts() as held_casts:
                    got = _unet_call(tiny)
    finally:
        tiny.unet.requires_grad_(False)
    assert torch.equal(got, expected)
    assert held_casts.casts < as_autocast_casts.casts / 2, (held_casts.casts,
                                                            as_autocast_casts.casts)
    for name, parameter in tiny.named_parameters():  # the fp32 masters back, bit for bit
        assert parameter.dtype == torch.float32 and torch.equal(parameter, before[name]), name


def test_frozen_weights_are_left_alone_where_the_erasers_run_in_fp32(tiny):
    tiny.unet.requires_grad_(False)
    with training_precision.frozen_weights_cast(tiny, "auto"):  # a CPU: fp32, no autocast
        assert {p.dtype for p in tiny.unet.parameters()} == {torch.float32}
    frozen = training_precision.frozen_unet(tiny, "bf16")
    assert {p.dtype for p in frozen.parameters()} == {torch.float32}


@pytest.mark.parametrize("name", ["esd_x", "esd_u", "ap", "ap_simultaneous", "age",
                                  "all_but_one", "ca"])
def test_an_erasure_is_the_same_with_its_frozen_weights_held_cast(tiny, cpu_autocast,
                                                                   monkeypatch, name):
    cls = ERASERS.get(name.removesuffix("_simultaneous"))
    config = dict(cls.presets["tiny"])
    if name.endswith("_simultaneous"):  # AP's search then takes gradients through θ*
        config["schedule"] = "simultaneous"

    def erase():
        eraser = cls(config)
        return eraser.erase(tiny, ErasureRequest(concepts=("circle",))).weights

    held_cast = []
    select = training_precision.frozen_layer_weights

    def selected(module):
        held_cast.append(len(weights := select(module)))
        return weights

    monkeypatch.setattr(training_precision, "frozen_layer_weights", selected)
    with_held = erase()
    assert held_cast and max(held_cast) > 0  # the model's (and frozen copy's) were held cast
    monkeypatch.setattr(training_precision, "frozen_layer_weights", lambda module: [])
    as_autocast_casts = erase()
    assert with_held and with_held.keys() == as_autocast_casts.keys()  # it trained
    assert all(torch.equal(with_held[key], as_autocast_casts[key]) for key in with_held)
