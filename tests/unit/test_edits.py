import numpy as np
import pytest
import torch

from erasebench.edits import EditedModel
from erasebench.errors import CorruptFileError, UserError
from erasebench.generate import Generator
from erasebench.models import DiffusionModel
from erasebench.runner import timed_erase
from erasebench.specs import ErasureRequest, GenerationSpec, ModelSpec, PromptSpec
from erasebench.testing import MockEraser

REQUEST = ErasureRequest(concepts=("cat",), preserve=("dog",))


@pytest.fixture
def edit(tiny):
    return MockEraser().erase(tiny, REQUEST)


def test_only_changed_parameters_are_stored(tiny, edit):
    assert edit.weights and all("attn2.to_v" in name for name in edit.weights)
    total = sum(p.numel() for _, p in tiny.named_parameters())
    assert sum(v.numel() for v in edit.weights.values()) < total / 50


def test_save_load_round_trip(tiny, edit, tmp_path):
    path = edit.save(tmp_path / "edit.safetensors")
    loaded = EditedModel.load(path)
    assert loaded.digest == edit.digest
    assert (loaded.eraser, loaded.config, loaded.request) == (edit.eraser, edit.config, REQUEST)
    assert loaded.base_fingerprint == tiny.fingerprint
    assert (loaded.seconds, loaded.device) == (None, "")  # not timed: the eraser was called


def test_how_long_an_edit_took_and_where_are_kept_outside_its_digest(edit, tmp_path):
    untimed = edit.digest
    edit.seconds, edit.device = 12.625, "cuda:0"
    loaded = EditedModel.load(edit.save(tmp_path / "edit.safetensors"))
    assert (loaded.seconds, loaded.device) == (12.625, "cuda:0")
    assert loaded.digest == untimed


def test_a_truncated_or_altered_edit_is_rejected(edit, tmp_path):
    path = edit.save(tmp_path / "edit.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        EditedModel.load(path)
    altered = bytearray(data)
    altered[-5] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(altered))
    with pytest.raises(CorruptFileError, match="checksum"):
        EditedModel.load(path)


def test_the_edited_fingerprint_is_read_from_an_edit_files_header(tiny, edit, tmp_path):
    path = edit.save(tmp_path / "edit.safetensors")
    assert EditedModel.fingerprint_in(path) == edit.edited_fingerprint() != tiny.fingerprint
    with edit.applied(tiny):  # the fingerprint the applied edit gives the model
        assert EditedModel.fingerprint_in(path) == tiny.fingerprint
    nothing = EditedModel(edit.eraser, edit.config, REQUEST, tiny.fingerprint, weights={})
    assert EditedModel.fingerprint_in(nothing.save(tmp_path / "sd.safetensors")) == tiny.fingerprint
    assert EditedModel.fingerprint_in(tmp_path / "missing.safetensors") is None
    path.write_bytes(path.read_bytes()[:40])  # the header cut: no edit there
    assert EditedModel.fingerprint_in(path) is None


def test_apply_changes_images_and_remove_restores_them(tiny, edit):
    generator = Generator(tiny, GenerationSpec(steps=4), progress=False)
    prompts = [PromptSpec(text="a photo of a cat", seed=0)]
    before = np.asarray(generator.images(prompts)[0])
    base = tiny.fingerprint
    with edit.applied(tiny):
        assert tiny.fingerprint == edit.edited_fingerprint() != base
        during = np.asarray(generator.images(prompts)[0])
    after = np.asarray(generator.images(prompts)[0])
    assert not np.array_equal(before, during)
    assert np.array_equal(before, after) and tiny.fingerprint == base


def test_an_edit_applied_again_and_again_hashes_its_weights_once(tiny, edit, monkeypatch):
    # Every apply names the edited model by the edit's digest; the robustness task applies
    # an edit three times per class and radius, and ESD-u's SD weights take seconds a hash.
    from erasebench import edits

    hashed = []
    tensor_bytes = edits.tensor_bytes
    monkeypatch.setattr(edits, "tensor_bytes",
                        lambda tensor: hashed.append(1) or tensor_bytes(tensor))
    for _ in range(3):
        with edit.applied(tiny):
            assert tiny.fingerprint == edit.edited_fingerprint()
    assert len(hashed) == len(edit.weights)


def test_an_edit_refuses_another_base_model(edit):
    with pytest.raises(UserError, match="made on model"):
        edit.apply(DiffusionModel.tiny(seed=7))


def test_an_edit_made_in_a_run_names_its_base_model_where_it_meets_another(tiny, tmp_path):
    # `generate --edit` without the --model the edit was made on said only two hashes.
    made = timed_erase(MockEraser(), tiny, REQUEST)
    loaded = EditedModel.load(made.save(tmp_path / "edit.safetensors"))
    assert loaded.base_model == tiny.spec == ModelSpec(id="tiny", revision="seed0")
    assert loaded.digest == MockEraser().erase(tiny, REQUEST).digest  # not in the digest
    other = DiffusionModel.tiny(seed=7)
    with pytest.raises(UserError) as refused:
        loaded.apply(other)
    assert str(refused.value) == (
        f"edit by 'mock' was made on model 'tiny' at seed0 ({tiny.fingerprint[:12]}), not on "
        f"this one, 'tiny' at seed7 ({other.fingerprint[:12]}); load the model it was made on "
        "(--model tiny --revision seed0)")
    # An edit saved before the base model was kept (or made outside a run) names none.
    unnamed = MockEraser().erase(tiny, REQUEST)
    assert EditedModel.load(unnamed.save(tmp_path / "old.safetensors")).base_model is None
    with pytest.raises(UserError, match=r"made on model \w{12}, not on this one, 'tiny'"):
        unnamed.apply(other)


def test_exported_folder_loads_in_stable_diffusion_pipeline(tiny, edit, tmp_path):
    from diffusers import StableDiffusionPipeline

    edit.export(tiny, tmp_path / "exported")
    pipeline = StableDiffusionPipeline.from_pretrained(tmp_path / "exported")
    for name, value in edit.weights.items():
        component, _, path = name.partition(".")
        assert torch.equal(getattr(pipeline, component).get_parameter(path), value)
    # Our sampler and the diffusers pipeline draw the same picture from the same seed.
    ours = Generator(tiny, GenerationSpec(steps=5, guidance=6.0), progress=False)
    with edit.applied(tiny):
        mine = np.asarray(ours.images([PromptSpec(text="a photo of a cat", seed=3)])[0], float)
    theirs = pipeline("a photo of a cat", num_inference_steps=5, guidance_scale=6.0,
                      height=32, width=32, output_type="np",
                      generator=torch.Generator().manual_seed(3)).images[0] * 255
    assert np.abs(mine - theirs).max() <= 1.0  # float rounding only
