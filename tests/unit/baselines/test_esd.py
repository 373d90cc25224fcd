"""ESD's two timestep conventions and its parameter sets."""

import torch

from erasebench.baselines.common import ddim_scheduler
from erasebench.baselines.esd import ESDU, ESDX


def test_paper_timestep_runs_opposite_to_the_noise_level_and_corrected_matches_it(tiny):
    scheduler = ddim_scheduler(tiny, 50)
    paper, corrected = ESDX({"timestep": "paper"}), ESDX({"timestep": "corrected"})
    generator = torch.Generator().manual_seed(0)
    for stop in (0, 10, 49):
        t = int(paper._timestep(scheduler, stop, generator))
        assert stop * 20 <= t < (stop + 1) * 20
        assert int(corrected._timestep(scheduler, stop, generator)) == int(
            scheduler.timesteps[stop])
    # after 10 of 50 steps from T the latent is still very noisy (t ~ 780), the paper says ~210
    assert int(scheduler.timesteps[10]) > 700


def test_x_and_u_split_the_unet(tiny):
    x, u = set(ESDX().editable_parameters(tiny)), set(ESDU().editable_parameters(tiny))
    assert x and u and not x & u
    assert all(".attn2." in name for name in x)
    assert not any("time_embedding" in name or "conv_out" in name for name in u)
