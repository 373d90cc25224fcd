"""The recovery attack: the projection keeps δ in its ball, the optimisation lowers its
loss, and on the miniature world a word filter is recovered while the plain prompt is not."""

from dataclasses import replace

import pytest
import torch

from erasebench.baselines.token_filter import token_table
from erasebench.errors import UserError
from erasebench.generate import Generator
from erasebench.models import load_model
from erasebench.plugins import ScoringContext
from erasebench.probe import ModelProbe
from erasebench.registry import ERASERS, TASKS
from erasebench.specs import ErasureRequest, ModelSpec
from erasebench.tasks.robustness.recovery import (
    RECOVERY_VERSION,
    AttackSettings,
    FittedPasses,
    conditioning,
    project,
    recover,
)


def test_projection_keeps_delta_inside_the_ball():
    delta = torch.randn(77, 8) * 10
    inside = project(delta, 2.0)
    assert float(inside.norm()) == pytest.approx(2.0)
    torch.testing.assert_close(inside / inside.norm(), delta / delta.norm())
    small = torch.full((3,), 0.1)
    assert torch.equal(project(small, 2.0), small)


@pytest.fixture(scope="module")
def shapes_world():
    model = load_model(ModelSpec(id="shapes"))
    task = TASKS.get("robustness")({"task_options": {"images_per_class": 10,
                                                     "splits": [["circle"]]},
                                    "radii": [0.2]})
    return model, task


def _probe(model, task, eraser, request, settings=None):
    """``eraser``'s probe, drawing with ``settings`` (default: the task's)."""
    edit = ERASERS.get(eraser)().erase(model, request)
    generator = Generator(model, settings or task.generation(), batch_size=64, progress=False)
    return ModelProbe(model, edit, generator)


def _filtered_circles(model, task):
    """A word filter's probe, the circle prompts and the original model's images of them."""
    request = task.requests()[0]
    probe = _probe(model, task, "token_filter", request)
    prompts = task.prompts(request)
    return probe, [p.text for p in prompts], probe.generator.images(prompts)


def _attack_a_word_filter(model, task):
    """The robustness task's metrics for a word filter of its first request."""
    request = task.requests()[0]
    prompts = task.prompts(request)
    probe = _probe(model, task, "token_filter", request)
    with probe.edited():
        images = probe.generator.images(prompts)
    context = ScoringContext("cpu", probe.generator.images, model.encode_text, probe)
    return {v.metric: v.value for v in task.score(images, prompts, request, context)}


def test_the_attack_lowers_its_loss_and_stays_in_its_ball(shapes_world):
    probe, texts, references = _filtered_circles(*shapes_world)
    recovery, losses = recover(probe, texts, references, 0.2,
                               AttackSettings(steps=30, samples=16))
    assert losses[-1] < 0.8 * losses[0]
    with probe.edited() as edited:
        bound = 0.2 * float(edited.encode_text(texts).flatten(1).norm(dim=1).mean())
    assert float(recovery.delta.norm()) <= bound * (1 + 1e-5)
    assert recovery.soft.shape[0] == 0
    none, no_steps = recover(probe, texts, references, 0.0, AttackSettings(steps=30))
    assert no_steps == [] and float(none.delta.abs().max()) == 0.0


def test_the_attack_runs_in_the_erasers_precision_and_leaves_the_weights_as_they_were(
        shapes_world, monkeypatch):
    # On a GPU the attack's UNet passes run under bf16 autocast with the frozen weights held
    # cast, as the erasers train (in fp32 they ran off the tensor cores); a CPU runs them in
    # fp32, so bf16 is turned on here as the erasers' own tests do.
    from erasebench import training_precision

    probe, texts, references = _filtered_circles(*shapes_world)
    unet = probe.model.unet
    before = {name: p.detach().clone() for name, p in unet.named_parameters()}
    seen: list[tuple[torch.dtype, torch.dtype]] = []
    layer = unet.time_embedding.linear_1  # every UNet pass goes through it
    hook = layer.register_forward_hook(
        lambda module, inputs, output: seen.append((module.weight.dtype, output.dtype)))
    settings = AttackSettings(steps=12, samples=8)
    try:
        _, fp32_losses = recover(probe, texts, references, 0.2, settings)
        assert set(seen) == {(torch.float32, torch.float32)}  # a CPU: fp32 throughout
        seen.clear()
        monkeypatch.setattr(training_precision, "autocast_dtype", lambda device, precision:
                            None if precision == "fp32" else torch.bfloat16)
        bf16, bf16_losses = recover(probe, texts, references, 0.2, settings)
        assert set(seen) == {(torch.bfloat16, torch.bfloat16)}  # held cast, run in bf16
        assert len(seen) == 1 + settings.steps  # the original's target, then each step
        seen.clear()
        recover(probe, texts, references, 0.2, AttackSettings(steps=1, samples=8,
                                                              precision="fp32"))
        assert set(seen) == {(torch.float32, torch.float32)}
    finally:
        hook.remove()
    assert bf16_losses[-1] < 0.9 * bf16_losses[0]
    assert bf16_losses[0] == pytest.approx(fp32_losses[0], rel=0.05)  # the same attack
    assert bf16.delta.dtype == torch.float32  # what is learnt stays fp32
    for name, parameter in unet.named_parameters():  # the fp32 weights back, bit for bit
        assert parameter.dtype == torch.float32 and torch.equal(parameter, before[name]), name


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_the_task_attacks_in_the_runs_precision(shapes_world, monkeypatch, precision):
    # `erasebench run --precision fp32` keeps the attack in fp32 on a GPU too; by default
    # ("auto") it runs in bf16 there, as the erasers train.
    import erasebench.tasks.robustness as robustness

    model, task = shapes_world
    request = task.requests()[0]
    prompts = task.prompts(request)
    settings = task.generation().model_copy(update={"precision": precision})
    probe = _probe(model, task, "token_filter", request, settings)
    asked = []

    def one_step(probe, texts, references, radius, settings, passes):
        asked.append(settings.precision)
        return recover(probe, texts, references, radius, replace(settings, steps=1), passes)

    monkeypatch.setattr(robustness, "recover", one_step)
    with probe.edited():
        images = probe.generator.images(prompts)
    context = ScoringContext("cpu", probe.generator.images, model.encode_text, probe)
    task.score(images, prompts, request, context)
    assert asked == [precision]  # one class, one radius


def _short_of_memory(monkeypatch, unet, fails):
    """``unet``'s passes raise torch's out-of-memory error where ``fails(samples, with
    gradients)`` says so, as a GPU too small for them would; returns the failures."""
    failures = []
    forward = unet.forward

    def limited(sample, *args, **kwargs):
        if fails(len(sample), torch.is_grad_enabled()):
            failures.append(len(sample))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")
        return forward(sample, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", limited)
    return failures


def test_an_attack_short_of_memory_halves_its_passes_to_the_same_attack(shapes_world,
                                                                         monkeypatch):
    # On SD a backward pass of 32 samples holds more memory than many GPUs have: the attack
    # splits its samples into passes that fit, whose weighted losses add up to the same
    # loss and gradient, instead of leaving the unit undone.
    probe, texts, references = _filtered_circles(*shapes_world)
    settings = AttackSettings(steps=4, samples=16)
    whole, whole_losses = recover(probe, texts, references, 0.2, settings)

    failures = _short_of_memory(monkeypatch, probe.model.unet, lambda samples, _: samples > 4)
    encode = probe.latents

    def encode_three_at_most(images):
        if len(images) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")
        return encode(images)

    monkeypatch.setattr(probe, "latents", encode_three_at_most)
    passes = FittedPasses()
    split, split_losses = recover(probe, texts, references, 0.2, settings, passes)
    assert passes == FittedPasses(samples=4, images=2)  # 16 -> 8 -> 4; 10 images -> 5 -> 2
    assert failures == [16, 8]  # the target's passes; the steps start at what fitted
    assert split_losses == pytest.approx(whole_losses, rel=1e-5)
    assert float((split.delta - whole.delta).norm()) < 1e-3 * float(whole.delta.norm())
    failures.clear()  # the unit's next attack starts from what fitted
    recover(probe, texts, references, 0.2, replace(settings, steps=1), passes)
    assert failures == []


def test_a_pass_out_of_memory_midway_starts_the_step_over(shapes_world, monkeypatch):
    # A step's second pass fails after the first one's gradient was added: the step starts
    # over at half the size, counting every sample once.
    probe, texts, references = _filtered_circles(*shapes_world)
    settings = AttackSettings(steps=3, samples=16)
    whole, whole_losses = recover(probe, texts, references, 0.2, settings)
    with_gradients = []

    def second_pass_once(samples, gradients):
        with_gradients.append(gradients)
        return gradients and with_gradients.count(True) == 2

    failures = _short_of_memory(monkeypatch, probe.model.unet, second_pass_once)
    passes = FittedPasses(samples=8)
    split, split_losses = recover(probe, texts, references, 0.2, settings, passes)
    assert failures == [8] and passes.samples == 4
    assert split_losses == pytest.approx(whole_losses, rel=1e-5)
    assert float((split.delta - whole.delta).norm()) < 1e-3 * float(whole.delta.norm())


def test_an_attack_the_cache_kept_is_read_back_not_made_again(shapes_world, tmp_path,
                                                              attacks_made):
    # A unit stopped half-way through its attacks makes, on its next start, only those it
    # had not made; what it reads is what was made, so its numbers are a whole run's.
    from erasebench.attack_cache import AttackCache

    model, task = shapes_world
    probe, texts, references = _filtered_circles(model, task)
    probe.kept = AttackCache(tmp_path)
    made = attacks_made
    settings = AttackSettings(steps=3, samples=4, soft_tokens=2)
    first, first_losses = recover(probe, texts, references, 0.2, settings)
    again, again_losses = recover(probe, texts, references, 0.2, settings)
    assert made == [0.2] and probe.attacks_read == 1
    assert torch.equal(again.delta, first.delta) and torch.equal(again.soft, first.soft)
    assert again_losses == first_losses and len(first_losses) == 3
    # Anything the attack depends on, changed, is another attack: the radius, a setting,
    # the prompts, their images, the edited model.
    recover(probe, texts, references, 0.1, settings)
    recover(probe, texts, references, 0.2, replace(settings, seed=1))
    recover(probe, texts[:-1], references[:-1], 0.2, settings)
    recover(probe, texts, references[::-1], 0.2, settings)
    other = _probe(model, task, "uce", task.requests()[0])
    other.kept = probe.kept
    recover(other, texts, references, 0.2, settings)
    assert made == [0.2, 0.1, 0.2, 0.2, 0.2, 0.2] and probe.attacks_read == 1
    assert len(list(tmp_path.iterdir())) == 6


def test_a_radiuss_attacked_images_of_all_classes_are_drawn_in_full_batches(shapes_world,
                                                                             monkeypatch):
    # Drawn class by class, each class's last batch ran part empty (on SD 50 images per
    # class at a batch of 64: one batch of 50 where the GPU could take 64).
    model, _ = shapes_world
    task = TASKS.get("robustness")({"task_options": {"images_per_class": 3,
                                                     "splits": [["circle", "square"]]},
                                    "radii": [0.1, 0.2], "steps": 1, "samples": 2})
    request = task.requests()[0]
    prompts = task.prompts(request)
    probe = _probe(model, task, "token_filter", request)
    probe.generator.batch_size = 4
    with probe.edited():
        images = probe.generator.images(prompts)
    attacked_batches = []
    sample = Generator.sample

    def counted(self, batch, conditioning=None):
        if conditioning is not None:
            attacked_batches.append([p.label for p in batch])
        return sample(self, batch, conditioning)

    monkeypatch.setattr(Generator, "sample", counted)
    context = ScoringContext("cpu", probe.generator.images, model.encode_text, probe)
    task.score(images, prompts, request, context)
    by_radius = [["circle"] * 3 + ["square"], ["square"] * 2]
    assert attacked_batches == by_radius * 2


def test_soft_tokens_replace_the_last_positions_for_every_prompt():
    encodings = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    delta = torch.full((5, 3), 0.5)
    soft = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
    attacked = conditioning(encodings, delta, soft)
    assert torch.equal(attacked[:, :3], encodings[:, :3] + 0.5)
    assert torch.equal(attacked[0, 3:], soft) and torch.equal(attacked[1, 3:], soft)
    assert torch.equal(conditioning(encodings, delta, soft[:0]), encodings + 0.5)


def test_soft_tokens_alone_learn_while_delta_stays_zero(shapes_world):
    probe, texts, references = _filtered_circles(*shapes_world)
    settings = AttackSettings(steps=30, samples=16, soft_tokens=4)
    recovery, losses = recover(probe, texts, references, 0.0, settings)
    assert len(losses) == 30 and losses[-1] < 0.8 * losses[0]
    assert float(recovery.delta.abs().max()) == 0.0  # radius 0: no budget for δ
    with probe.edited() as edited:
        start = edited.encode_text(texts)[:, -4:].mean(0)
    assert recovery.soft.shape == start.shape and not torch.allclose(recovery.soft, start)
    # δ's positions under the soft tokens get no gradient: its budget stays on the prompt
    both, _ = recover(probe, texts, references, 0.2, settings)
    assert float(both.delta[-4:].abs().max()) == 0.0 and float(both.delta.abs().max()) > 0


def test_soft_tokens_alone_recover_a_word_filter(shapes_world):
    model, _ = shapes_world
    task = TASKS.get("robustness")({"task_options": {"images_per_class": 10,
                                                     "splits": [["circle"]]},
                                    "radii": [], "soft_tokens": 4})
    values = _attack_a_word_filter(model, task)
    # four free vectors after the (filtered) prompt are a new word for "circle"
    assert values["RSR-1@0+4t"] >= 80.0 and values["RSR-1@0"] <= 50.0


def test_soft_tokens_name_their_attacks():
    task = TASKS.get("robustness")({"radii": [0.1], "soft_tokens": 2})
    rates = [m for m in task.metrics if m.startswith("RSR-1")]
    assert rates == ["RSR-1@0", "RSR-1@0+2t", "RSR-1@0.1+2t"]
    with pytest.raises(UserError, match="soft_tokens"):
        TASKS.get("robustness")({"soft_tokens": -1})


def test_its_records_name_the_attacks_version_beside_the_base_tasks_scorers():
    # RSR numbers of two versions of the attack must not pass for one in the provenance
    # table (the records' scorers) and the metrics' grouping by it.
    task = TASKS.get("robustness")({})
    base = TASKS.get("shapes_objects")({}).scorer_versions()
    assert task.scorer_versions() == {**base, "recovery attack": f"v{RECOVERY_VERSION}"}


def test_a_word_filter_is_recovered_and_the_plain_prompt_is_not(shapes_world):
    model, task = shapes_world
    table = dict(model.named_parameters())[token_table(model)].detach().clone()
    values = _attack_a_word_filter(model, task)
    assert values["RSR-1@0.2"] >= 80.0  # the attack has teeth: the knowledge was never gone
    assert values["RSR-1@0"] <= 50.0  # while the plain prompt mostly does not draw circles
    # the filter's edit is taken off again: the model is left as it was, and says so
    assert torch.equal(dict(model.named_parameters())[token_table(model)], table)
    assert model.fingerprint == load_model(ModelSpec(id="shapes")).fingerprint


def test_options_are_checked_and_scoring_needs_the_model():
    with pytest.raises(UserError, match="ESR-k"):
        TASKS.get("robustness")({"task": "i2p_nudity"})
    with pytest.raises(UserError, match="radii"):
        TASKS.get("robustness")({"radii": [0.0]})
    task = TASKS.get("robustness")({"task_options": {"images_per_class": 1,
                                                     "splits": [["circle"]]}})
    request = ErasureRequest(concepts=("circle",), label="split 1")
    prompts = task.prompts(request)
    from PIL import Image

    images = [Image.new("RGB", (32, 32))] * len(prompts)
    with pytest.raises(UserError, match="erasebench run"):
        task.score(images, prompts, request, ScoringContext("cpu", lambda p: images))


def test_a_prompt_set_attack_is_scored_as_given(shapes_world, tmp_path):
    model, _ = shapes_world
    attack = tmp_path / "attack.csv"
    attack.write_text("prompt,evaluation_seed,label\n"
                      + "".join(f"a round red circle,{seed},circle\n" for seed in range(8))
                      + "a blue square,3,square\n")  # square is not erased: left out
    task = TASKS.get("robustness")({"task_options": {"images_per_class": 2,
                                                     "splits": [["circle"]]},
                                    "radii": [0.1], "steps": 1, "prompt_file": str(attack)})
    request = task.requests()[0]
    prompts = task.prompts(request)
    assert sum(p.group == "attack_set" for p in prompts) == 8
    probe = _probe(model, task, "sd", request)
    images = probe.generator.images(prompts)
    context = ScoringContext("cpu", probe.generator.images, model.encode_text, probe)
    values = {v.metric: v.value for v in task.score(images, prompts, request, context)}
    assert values["ASR-1"] >= 75.0 and values["RSR-1@0"] == 100.0
