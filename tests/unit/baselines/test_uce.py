"""UCE's closed form is the minimiser of its objective, and its token conventions."""

import torch

from erasebench.baselines.uce import UCE, closed_form_edit, concept_rows
from erasebench.specs import ErasureRequest


def objective(w_new, w, c_e, v_e, c_p, lamb, s_e, s_p):
    return (lamb * (w_new - w).pow(2).sum() + s_e * (c_e @ w_new.T - v_e).pow(2).sum()
            + s_p * (c_p @ w_new.T - c_p @ w.T).pow(2).sum())


def test_closed_form_equals_the_gradient_descent_minimiser():
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    c_e = torch.randn(3, 8, generator=generator, dtype=torch.float64)
    v_e = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    c_p = torch.randn(4, 8, generator=generator, dtype=torch.float64)
    args = (0.5, 1.0, 0.3)
    closed = closed_form_edit(w, c_e, v_e, c_p, *args)
    w_new = w.clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS([w_new], max_iter=500, tolerance_grad=1e-14,
                                  tolerance_change=1e-16, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = objective(w_new, w, c_e, v_e, c_p, *args)
        loss.backward()
        return loss

    optimiser.step(closure)
    relative = (w_new.detach() - closed).norm() / closed.norm()
    assert relative < 1e-4
    assert (closed - w).abs().max() > 1e-2  # the edit does move the matrix


def test_token_conventions(tiny):
    # "last": one row per concept; "aligned": from the last word token to the end of 77
    rows, targets = concept_rows(tiny, ["a cat"], [""], "last")
    assert rows.shape[0] == targets.shape[0] == 1
    rows, targets = concept_rows(tiny, ["a cat"], ["a dog"], "aligned")
    assert rows.shape[0] == targets.shape[0] == 77 - 2
    embedded = tiny.encode_text(["a cat"]).float()
    assert torch.equal(rows[0], embedded[0, 2])  # BOS, "a", "cat": cat sits at 2


def test_erased_concept_maps_to_its_guide(tiny):
    edit = UCE({"lamb": 1e-3, "keep_empty_prompt": False, "token_rows": "last"}).erase(
        tiny, ErasureRequest(concepts=("cat",), anchors=("dog",)))
    cat_rows, dog_rows = concept_rows(tiny, ["cat"], ["dog"], "last")
    for name, weight in edit.weights.items():
        original = tiny.parameter(name).detach()
        assert torch.allclose(cat_rows @ weight.T, dog_rows @ original.T, atol=1e-3), name
