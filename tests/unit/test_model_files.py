"""What a diffusers folder must hold for a run to load it right, checked before anything
loads: the layouts that load pass, a folder a run would fail on (or tokenize wrong) is
named file by file."""

import shutil

import pytest
import torch

from erasebench.errors import UserError
from erasebench.model_files import missing_from_folder
from erasebench.models import DiffusionModel
from erasebench.tokenizer import write_clip_tokenizer_files


@pytest.fixture
def saved(tiny, tmp_path):
    return tiny.save_pretrained(tmp_path / "model")


def test_a_saved_folder_lacks_nothing_and_loads(tiny, saved):
    assert missing_from_folder(saved) == []
    assert DiffusionModel.load(str(saved)).fingerprint == tiny.fingerprint


def test_sd_v14s_tokenizer_layout_and_sharded_weights_lack_nothing_and_load(tiny, saved):
    # SD v1.4's folder has vocab.json and merges.txt where transformers 5 writes
    # tokenizer.json; a large UNet is saved in shards with an index beside them.
    shutil.rmtree(saved / "tokenizer")
    write_clip_tokenizer_files(saved / "tokenizer")
    shutil.rmtree(saved / "unet")
    tiny.unet.save_pretrained(saved / "unet", max_shard_size="100KB")
    assert (saved / "unet" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    assert missing_from_folder(saved) == []
    loaded = DiffusionModel.load(str(saved))
    assert loaded.fingerprint == tiny.fingerprint
    assert loaded.tokenizer("a cat").input_ids == tiny.tokenizer("a cat").input_ids


def test_a_folder_a_run_would_not_read_right_is_refused_naming_each_file(tiny, saved):
    # Without tokenizer_config.json the tokenizer loads with no 77-token limit, and the
    # first long prompt overflows the text encoder, hours into a run.
    (saved / "tokenizer" / "tokenizer_config.json").unlink()
    (saved / "tokenizer" / "tokenizer.json").unlink()
    # A pickled UNet, as older folders have: a run reads safetensors only.
    (saved / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({}, saved / "unet" / "diffusion_pytorch_model.bin")
    lacking = ["tokenizer/tokenizer_config.json",
               "tokenizer/tokenizer.json (or vocab.json and merges.txt)",
               "unet/diffusion_pytorch_model.safetensors (it has diffusion_pytorch_model.bin, "
               "which a run does not read: safetensors under this name only)"]
    assert missing_from_folder(saved) == lacking
    with pytest.raises(UserError) as caught:
        DiffusionModel.load(str(saved))
    assert str(caught.value) == f"model folder {str(saved)!r} lacks {'; '.join(lacking)}"


def test_a_shard_its_index_names_is_a_file_a_run_reads(tiny, saved):
    shutil.rmtree(saved / "unet")
    tiny.unet.save_pretrained(saved / "unet", max_shard_size="100KB")
    shard = sorted((saved / "unet").glob("*-of-*.safetensors"))[-1]
    shard.unlink()
    assert missing_from_folder(saved) == [f"unet/{shard.name}"]
