import re
import socket
import threading
import warnings
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch

from erasebench.errors import UserError
from erasebench.generate import Generator
from erasebench.hub import hub_unreachable
from erasebench.models import DiffusionModel, load_model
from erasebench.specs import GenerationSpec, ModelSpec, PromptSpec

PROMPTS = [PromptSpec(text="a cat", seed=0), PromptSpec(text="a dog", seed=1)]


def _images(model):
    generator = Generator(model, GenerationSpec(steps=4), progress=False)
    return np.stack([np.asarray(image) for image in generator.images(PROMPTS)])


def test_saved_model_loads_back_by_path_and_draws_the_same(tiny, tmp_path, capfd):
    tiny.save_pretrained(tmp_path / "model")
    assert "shards" not in capfd.readouterr().err  # no progress bar of transformers' in `export`
    assert (tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list((tmp_path / "model").rglob("*.bin"))  # safetensors only
    loaded = DiffusionModel.load(str(tmp_path / "model"))
    assert loaded.fingerprint == tiny.fingerprint
    assert np.array_equal(_images(loaded), _images(tiny))


def test_fingerprint_is_stable_and_sees_one_changed_weight():
    model = DiffusionModel.tiny()
    assert model.fingerprint == DiffusionModel.tiny().fingerprint
    assert model.fingerprint != DiffusionModel.tiny(seed=1).fingerprint
    with torch.no_grad():
        model.unet.conv_out.bias[0] += 1e-3
    model.set_fingerprint(None)
    assert model.fingerprint != DiffusionModel.tiny().fingerprint


def test_random_weights_are_drawn_on_the_device_asked_for():
    # "meta" holds no data, so every parameter being there shows that nothing was drawn on
    # the CPU and moved (which for SD's billion weights takes half a minute)
    model = load_model(ModelSpec(id="tiny"), device="meta")
    assert {p.device.type for _, p in model.named_parameters()} == {"meta"}
    assert load_model(ModelSpec(id="tiny"), device="cpu").fingerprint == \
        DiffusionModel.tiny().fingerprint


@pytest.mark.gpu
def test_random_weights_drawn_on_a_gpu_are_seeded():
    model = DiffusionModel.tiny(device="cuda")
    assert model.device.type == "cuda"
    assert model.fingerprint == DiffusionModel.tiny(device="cuda").fingerprint
    assert model.fingerprint != DiffusionModel.tiny(1, device="cuda").fingerprint


def test_a_folder_that_is_not_a_diffusers_model_is_a_user_error(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="not a diffusers folder"):
        DiffusionModel.load(str(tmp_path))


@pytest.mark.parametrize("path", ["/no/such/model", "./no_such_model", "runs/a/model"])
def test_a_path_that_does_not_exist_is_named_as_a_missing_folder(path):
    with pytest.raises(UserError, match=f"model folder '{path}' does not exist; pass a "
                       "diffusers folder or a hub id"):
        DiffusionModel.load(path)


def test_an_unreachable_hub_id_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UserError, match="model 'nobody/no-such-model-erasebench': only the "
                       "Hugging Face cache can be read"):
        DiffusionModel.load("nobody/no-such-model-erasebench")


@pytest.fixture
def silent_hub(monkeypatch, tmp_path):
    """The hub's endpoint a local socket that takes each request and hangs up (a network
    that answers nothing), its cache an empty folder; yields the request lines it took."""
    server = socket.create_server(("127.0.0.1", 0))
    requests: list[str] = []

    def hang_up() -> None:
        while True:
            connection, _ = server.accept()
            with connection:
                requests.append(connection.recv(300).decode(errors="replace").split("\r\n")[0])

    threading.Thread(target=hang_up, daemon=True).start()
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT",
                        f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield requests
    server.close()


def _in_hub_cache(model, repo: str, cache: str) -> None:
    """``model`` saved where huggingface_hub keeps ``repo``'s main revision."""
    folder = Path(cache) / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    model.save_pretrained(folder / "snapshots" / commit)


def test_a_hub_id_in_the_cache_loads_without_asking_a_hub_that_does_not_answer(tiny,
                                                                               silent_hub):
    # Without network, huggingface_hub asked for every file five times with back-off: SD
    # v1.4 by its hub id took minutes to fail, or to be read from the cache that held it.
    _in_hub_cache(tiny, "nobody/erasebench-tiny", huggingface_hub.constants.HF_HUB_CACHE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = DiffusionModel.load("nobody/erasebench-tiny")
    # Nor a warning of what diffusers passes huggingface_hub, at every load of a hub id.
    assert not [w for w in caught if "local_dir_use_symlinks" in str(w.message)]
    assert loaded.fingerprint == tiny.fingerprint
    assert silent_hub and not [line for line in silent_hub if "erasebench-tiny" in line]


def test_the_hub_model_files_weights_names_are_all_a_load_reads(tiny, silent_hub, tmp_path):
    # `erasebench weights` names these files to download ahead for a node without network:
    # a cache holding no others loads. The tokenizer in SD v1.4's hub layout (vocab.json and
    # merges.txt, which save_pretrained no longer writes).
    import shutil

    from erasebench.model_files import HUB_MODEL_FILES
    from erasebench.tokenizer import write_clip_tokenizer_files

    saved = tmp_path / "saved"
    tiny.save_pretrained(saved)
    shutil.rmtree(saved / "tokenizer")
    write_clip_tokenizer_files(saved / "tokenizer")
    snapshot = (Path(huggingface_hub.constants.HF_HUB_CACHE) / "models--nobody--listed" /
                "snapshots" / ("0" * 40))
    for name in HUB_MODEL_FILES:
        if (saved / name).is_file():
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(saved / name, snapshot / name)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    loaded = DiffusionModel.load("nobody/listed")
    assert loaded.fingerprint == tiny.fingerprint
    assert loaded.tokenizer("a cat").input_ids == tiny.tokenizer("a cat").input_ids


def test_a_hub_model_in_transformers_5s_layout_with_a_sharded_unet_downloads_and_loads(
        tiny, silent_hub, monkeypatch, tmp_path):
    # `erasebench weights --download` fetches what a run reads in the layout the repository
    # has: a tokenizer.json in place of SD v1.4's vocab.json and merges.txt, a UNet in shards
    # that its index names. Before, it asked for SD v1.4's files, and said the model lacked
    # them however complete its cache was.
    import shutil

    from erasebench import hub

    repo = tmp_path / "repo"
    tiny.save_pretrained(repo)
    shutil.rmtree(repo / "unet")
    tiny.unet.save_pretrained(repo / "unet", max_shard_size="100KB")
    listed = [name for path in sorted(repo.rglob("*")) if path.is_file()
              and (name := path.relative_to(repo).as_posix()) != "vae/config.json"]
    snapshot = (Path(huggingface_hub.constants.HF_HUB_CACHE) / "models--someone--t5-layout"
                / "snapshots" / ("c" * 40))
    asked = []

    def hub_download(repo_id, filename):
        asked.append(filename)
        (snapshot / filename).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo / filename, snapshot / filename)
        (snapshot.parents[1] / "refs").mkdir(exist_ok=True)
        (snapshot.parents[1] / "refs" / "main").write_text("c" * 40)
        return str(snapshot / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub_download)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id: listed)
    monkeypatch.setattr(hub, "hub_unreachable", lambda: None)
    # The listing lacks the VAE's config: named as not in the repository, never asked for.
    assert hub.download_model("someone/t5-layout") == {
        "vae/config.json": "not in the repository"}
    shards = sorted(name for name in listed if "-of-" in name)
    # All but model_index.json, which a load does not read: it loads component by component.
    assert len(shards) > 1 and sorted(asked) == [name for name in listed
                                                 if name != "model_index.json"]
    assert "tokenizer/vocab.json" not in asked
    # 5 configs, tokenizer.json, the text encoder's and the VAE's weights, the UNet's index
    # and shards
    assert hub.missing_from_cache("someone/t5-layout") == (["vae/config.json"],
                                                             5 + 1 + 2 + 1 + len(shards))
    shutil.copyfile(repo / "vae" / "config.json", snapshot / "vae" / "config.json")
    assert hub.missing_from_cache("someone/t5-layout")[0] == []
    monkeypatch.undo()  # the cache, not the fakes, from here; the hub still does not answer
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(snapshot.parents[2]))
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    assert DiffusionModel.load("someone/t5-layout").fingerprint == tiny.fingerprint


def test_a_hub_id_not_in_the_cache_of_a_hub_that_does_not_answer_says_so(silent_hub):
    # Before diffusers is asked for anything: the files named, and how to fetch them.
    endpoint = huggingface_hub.constants.ENDPOINT
    with pytest.raises(UserError) as caught:
        DiffusionModel.load("nobody/not-cached-erasebench")
    assert re.fullmatch(
        f"model 'nobody/not-cached-erasebench': only the Hugging Face cache can be read "
        f"\\({endpoint} did not answer within 5 s: .*\\), and it lacks 11 of the 11 files a "
        "run reads \\(scheduler/scheduler_config.json, text_encoder/config.json, "
        "unet/config.json and 8 more\\); `erasebench weights --model "
        "nobody/not-cached-erasebench --download` fetches them where there is network; "
        "without network, download the diffusers folder elsewhere and pass its path as "
        "--model", str(caught.value))
    assert not [line for line in silent_hub if "not-cached-erasebench" in line]
    # At a revision, huggingface_hub's command names the files.
    with pytest.raises(UserError, match="at revision 'v2': .* `hf download "
                       "nobody/not-cached-erasebench --revision v2 "
                       "scheduler/scheduler_config.json "):
        DiffusionModel.load("nobody/not-cached-erasebench", revision="v2")


def test_with_hf_hub_offline_set_the_hub_is_not_asked(silent_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_unreachable() == "HF_HUB_OFFLINE is set"
    monkeypatch.delenv("HF_HUB_OFFLINE")  # as huggingface_hub read it at import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert hub_unreachable() == "HF_HUB_OFFLINE is set"
    with pytest.raises(UserError, match="only the Hugging Face cache can be read "
                       "\\(HF_HUB_OFFLINE is set\\)"):
        DiffusionModel.load("nobody/not-cached-erasebench")
    assert silent_hub == []


def test_load_model_resolves_tiny_seeds():
    assert load_model(ModelSpec(id="tiny")).fingerprint == DiffusionModel.tiny().fingerprint
    assert (load_model(ModelSpec(id="tiny", revision="seed3")).fingerprint
            == DiffusionModel.tiny(3).fingerprint)


def test_encode_text_shape_and_padding(tiny):
    embeddings = tiny.encode_text(["a cat", ""])
    assert embeddings.shape == (2, 77, 32)
    assert tiny.token_ids(["a cat"])[0, -1].item() == tiny.tokenizer.pad_token_id
