"""MACE's pieces: its timestep weighting, LoRAs that start at zero, and the fusion."""

import torch

from erasebench.baselines.common import cross_attention_modules
from erasebench.baselines.mace import MACE, LoRA, importance_timesteps, lora_attached
from erasebench.specs import ErasureRequest


def test_timesteps_concentrate_where_f_is_large():
    t = importance_timesteps(20_000, torch.Generator().manual_seed(0))
    inside = ((t >= 200) & (t < 400)).double().mean()
    assert inside > 0.75  # f = σ(0.05(t-200)) - σ(0.05(t-400)) is a bump on [200, 400)
    assert t.min() >= 0 and t.max() < 1000


def test_lora_starts_at_the_original_weights_and_hooks_come_off(tiny):
    modules = cross_attention_modules(tiny)
    linear = modules[0][1].to_k
    x = torch.randn(2, linear.in_features)
    before = linear(x)
    with lora_attached(modules, 1, torch.Generator().manual_seed(0)) as loras:
        assert torch.equal(linear(x), before)  # B = 0 at the start
        lora = loras[f"{modules[0][0]}.to_k.weight"]
        with torch.no_grad():
            lora.up.fill_(1.0)
        assert not torch.allclose(linear(x), before)
    assert torch.equal(linear(x), before)


def test_fusion_of_one_concept_reproduces_its_lora_on_the_concept_rows(tiny):
    mace = MACE({"fuse_lambda": 1e-6, "templates": ("a {}",)})
    request = ErasureRequest(concepts=("cat",))
    names = mace.editable_parameters(tiny)
    refined = {n: tiny.parameter(n).detach().clone() for n in names}
    generator = torch.Generator().manual_seed(0)
    deltas = {n: 0.01 * torch.randn(w.shape, generator=generator) for n, w in refined.items()}
    fused = mace._fuse(tiny, request, refined, [deltas])
    rows = mace._rows(tiny, ["a cat"], ["cat"], False)
    name = names[0]
    wanted = rows @ (refined[name] + deltas[name]).T
    assert torch.allclose(rows @ fused[name].T, wanted, atol=1e-3)
    assert isinstance(LoRA(torch.nn.Linear(4, 3), 1, generator).delta(), torch.Tensor)
