"""The Stable Diffusion tasks as users run them: `erasebench weights`, then `erasebench run`
on the tiny model with every scorer reading its (random) weight files offline."""

from pathlib import Path

import pandas as pd

from erasebench.cli import main
from erasebench.scorers.clip import SAFETENSORS_NAME


def test_weights_lists_missing_and_present_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    assert main(["weights", "--tasks", "imagenette,i2p_nudity"]) == 1
    out = capsys.readouterr().out
    assert "320n.onnx" in out and "1 file(s) missing" in out
    # Piped (not a terminal), the table folds no path, whatever its length: each is copied
    # whole onto the offline node it goes to.
    missing = tmp_path / "empty" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert len(str(missing)) > 80
    assert any(str(missing) in line for line in out.splitlines())


def test_weights_all_present(scorer_home, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    argv = ["weights", "--tasks", "imagenette,artist,coco_quality,concept_graph",
            "--task-config", "clip_model=erasebench-tiny-clip"]
    # SD v1.4, the tasks' base model, is not in the (empty) Hugging Face cache: a run
    # without network would stop on it as on a scorer's file.
    assert main(argv) == 1
    assert "base model CompVis/stable-diffusion-v1-4" in capsys.readouterr().out
    assert main([*argv, "--model", "tiny"]) == 0
    out = capsys.readouterr().out
    assert out.count(" yes ") == 6 and " no " not in out


def test_imagenette_and_coco_run_on_the_tiny_model(scorer_home, tmp_path, capsys):
    results = tmp_path / "results"
    argv = ["run", "--model", "tiny", "--erasers", "sd,mock", "--tasks",
            "imagenette,coco_quality", "--steps", "2", "--workers", "1",
            "--task-config", "imagenette.images_per_class=1",
            "--task-config", 'imagenette.splits=[["tench"]]',
            "--task-config", "coco_quality.captions=3",
            "--task-config", "coco_quality.clip_model=erasebench-tiny-clip",
            "--results", str(results), "--cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    rows = pd.read_parquet(results / "metrics.parquet")
    assert set(rows.task) == {"imagenette", "coco_quality"}
    assert set(rows.eraser) == {"sd", "mock"}
    # coco_quality measures Imagenette's four default splits (its requests_from)
    fid = rows[(rows.task == "coco_quality") & (rows.metric == "FID")].groupby("eraser").value
    assert fid.count()["sd"] == 4 and fid.count()["mock"] == 4
    assert fid.max()["sd"] < 1e-3 < fid.min()["mock"]  # FID of SD to itself is 0
    board = (tmp_path / "leaderboard.md").read_text()
    assert "## imagenette" in board and "ESR-1" in board and "FID" in board
    # per-image values stored beside each unit's record; the leaderboard's intervals
    samples = pd.concat(pd.read_parquet(p) for p in (results / "samples").glob("*.parquet"))
    assert {"ESR-1", "PSR-5", "CLIP"} <= set(samples.metric)
    assert "Bootstrap 95% intervals over images" in board
    # thumbnails kept per unit; the leaderboard's grid of the same prompts per eraser
    assert len(list((results / "thumbnails").glob("*.png"))) == 2 + 8  # 1 + 4 units each
    assert "(results/figures/imagenette-tiny-grid.png)" in board
    assert (results / "figures" / "imagenette-tiny-grid.png").is_file()


def test_missing_scorer_weights_stop_the_run_before_anything_is_generated(tmp_path,
                                                                         monkeypatch, capsys):
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    results = tmp_path / "results"
    argv = ["run", "--model", "tiny", "--erasers", "sd", "--tasks", "imagenette",
            "--results", str(results), "--cache", str(tmp_path / "cache"), "--workers", "1"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "resnet50-11ad3fa6.pth" in error and "classifier_weights" in error
    assert not results.exists() and not (tmp_path / "cache" / "images").exists()


def test_weights_download_tries_every_missing_file_and_says_why_each_failed(tmp_path,
                                                                            monkeypatch,
                                                                            capsys):
    from urllib.error import URLError

    import huggingface_hub.constants
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tried = []

    def offline(url, path, **_):
        tried.append(url)
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    assert main(["weights", "--download", "--tasks", "imagenette,artist,coco_quality"]) == 1
    out = capsys.readouterr().out
    # Every file tried once (artist's and coco_quality's CLIP is one file), each failure named
    assert sorted(Path(url).name for url in tried) == [
        "alexnet-owt-7be5be79.pth", "resnet50-11ad3fa6.pth",
        "weights-inception-2015-12-05-6726825d.pth"]
    failed = [line for line in out.splitlines() if line.startswith("not downloaded: ")]
    # The SD tasks' base model's 11 files too, into the hub's cache
    base_model = [line for line in failed if "CompVis/stable-diffusion-v1-4" in line]
    assert len(base_model) == 11
    assert all(line.endswith("(ConnectionError: HF_HUB_OFFLINE is set)") for line in base_model)
    failed = [line for line in failed if line not in base_model]
    # Not told to do what it just did
    assert len(failed) == 4 and "5 file(s) missing: put them at the paths shown" in out
    assert sum("Name or service not known" in line for line in failed) == 3
    # The hub is not asked at all offline (huggingface_hub retried for ~25 s a file)
    assert any(line.endswith(f"{SAFETENSORS_NAME} (download failed: ConnectionError: "
                             "HF_HUB_OFFLINE is set)") for line in failed)


def test_weights_download_shows_the_file_where_the_hub_put_it(tmp_path, monkeypatch, capsys):
    import huggingface_hub
    import torch

    import erasebench.scorers.clip

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(erasebench.scorers.clip, "hub_unreachable", lambda: None)
    # The hub's cache keeps a file under the commit it came from, unknown before the download
    snapshot = (tmp_path / "hub" / "models--timm--vit_base_patch32_clip_224.openai" /
                "snapshots" / "abc123")

    def hub_download(repo, filename):
        snapshot.mkdir(parents=True)
        (snapshot / filename).write_bytes(b"weights")
        return str(snapshot / filename)

    def url_download(url, path, **_):
        Path(path).write_bytes(b"weights")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", url_download)
    assert main(["weights", "--download", "--tasks", "artist", "--model", "tiny"]) == 0
    out = capsys.readouterr().out
    assert out.count(" yes ") == 2 and " no " not in out and "not downloaded" not in out
    assert str(snapshot / SAFETENSORS_NAME) in out


def test_weights_says_whether_the_base_model_is_in_the_hub_cache(tmp_path, monkeypatch,
                                                                  capsys):
    import huggingface_hub.constants

    from erasebench.model_files import HUB_MODEL_FILES

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    main(["weights", "--tasks", "imagenette,artist,shapes_objects"])
    out = " ".join(capsys.readouterr().out.split())
    # The SD tasks' model, once for both; the miniature world's ships in the package
    assert out.count("base model ") == 1
    assert ("base model CompVis/stable-diffusion-v1-4 (tasks imagenette, artist): 11 of its "
            "11 files not in the Hugging Face cache; a run downloads them where there is "
            "network, and `hf download CompVis/stable-diffusion-v1-4 "
            "scheduler/scheduler_config.json text_encoder/config.json ") in out
    repo = tmp_path / "hub" / "models--CompVis--stable-diffusion-v1-4"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    for name in HUB_MODEL_FILES[1:]:
        (repo / "snapshots" / ("a" * 40) / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / "snapshots" / ("a" * 40) / name).write_text("{}")
    main(["weights", "--tasks", "imagenette"])
    out = " ".join(capsys.readouterr().out.split())
    assert "1 of its 11 files not in the Hugging Face cache" in out
    assert "stable-diffusion-v1-4 scheduler/scheduler_config.json` fetches them ahead" in out
    (repo / "snapshots" / ("a" * 40) / HUB_MODEL_FILES[0]).parent.mkdir()
    (repo / "snapshots" / ("a" * 40) / HUB_MODEL_FILES[0]).write_text("{}")
    main(["weights", "--tasks", "imagenette"])
    out = " ".join(capsys.readouterr().out.split())
    assert "base model CompVis/stable-diffusion-v1-4 (tasks imagenette): in the Hugging Face " \
        "cache" in out


def test_weights_takes_a_cached_hub_model_in_the_layout_it_has(tiny, tmp_path, monkeypatch,
                                                                capsys):
    # transformers 5 writes tokenizer.json, not SD v1.4's vocab.json and merges.txt; a large
    # UNet comes in shards. A run loads both; `weights` said they lacked four files.
    import shutil

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--someone--t5-layout"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("d" * 40)
    snapshot = tiny.save_pretrained(repo / "snapshots" / ("d" * 40))
    shutil.rmtree(snapshot / "unet")
    tiny.unet.save_pretrained(snapshot / "unet", max_shard_size="100KB")
    argv = ["weights", "--tasks", "shapes_objects", "--model", "someone/t5-layout"]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("base model someone/t5-layout (tasks shapes_objects): in the Hugging Face cache"
            in out)
    # A shard the index names is a file a run reads (and downloads, where there is network);
    # without it, a run on a node without network stops, as on a missing scorer file.
    shard = sorted((snapshot / "unet").glob("*-of-*.safetensors"))[0]
    shard.unlink()
    assert main(argv) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "base model someone/t5-layout (tasks shapes_objects): 1 of its " in out
    assert f"someone/t5-layout unet/{shard.name}` fetches them ahead" in out


def test_weights_checks_and_downloads_the_base_model_a_run_would_be_given(tmp_path,
                                                                         monkeypatch, capsys):
    import huggingface_hub
    import huggingface_hub.constants

    from erasebench import hub
    from erasebench.model_files import HUB_MODEL_FILES

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    argv = ["weights", "--tasks", "shapes_objects", "--model", "someone/sd-finetune"]
    main(argv)
    out = " ".join(capsys.readouterr().out.split())
    # --model stands for every task's own, as in `run`
    assert ("base model someone/sd-finetune (tasks shapes_objects): 11 of its 11 files not "
            "in the Hugging Face cache") in out
    snapshot = tmp_path / "hub" / "models--someone--sd-finetune" / "snapshots" / ("b" * 40)

    def hub_download(repo, filename):
        assert repo == "someone/sd-finetune"
        if filename == "unet/diffusion_pytorch_model.safetensors":
            raise OSError("401 Client Error: access to this model is restricted")
        (snapshot.parents[1] / "refs").mkdir(parents=True, exist_ok=True)
        (snapshot.parents[1] / "refs" / "main").write_text("b" * 40)
        (snapshot / filename).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / filename).write_text("{}")
        return str(snapshot / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub_download)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo: [*HUB_MODEL_FILES])
    monkeypatch.setattr(hub, "hub_unreachable", lambda: None)
    main([*argv, "--download"])
    out = " ".join(capsys.readouterr().out.split())
    assert ("not downloaded: someone/sd-finetune unet/diffusion_pytorch_model.safetensors "
            "(OSError: 401 Client Error: access to this model is restricted)") in out
    assert "base model someone/sd-finetune (tasks shapes_objects): 1 of its 11 files not" in out
    assert all((snapshot / name).is_file() for name in HUB_MODEL_FILES
               if name != "unet/diffusion_pytorch_model.safetensors")
    # Without network each missing file is named at once, with the reason the hub gave.
    monkeypatch.setattr(hub, "hub_unreachable", lambda: "HF_HUB_OFFLINE is set")
    main([*argv, "--download"])
    out = " ".join(capsys.readouterr().out.split())
    assert ("not downloaded: someone/sd-finetune unet/diffusion_pytorch_model.safetensors "
            "(ConnectionError: HF_HUB_OFFLINE is set)") in out


def test_weights_checks_a_diffusers_folder_given_as_the_base_model(tiny, tmp_path, capsys):
    folder = tiny.save_pretrained(tmp_path / "sd folder")
    argv = ["weights", "--tasks", "shapes_objects", "--model", str(folder)]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (f"base model {folder} (tasks shapes_objects): a diffusers folder with every file "
            "a run reads") in out
    # One that a run would fail on, an fp16 variant in place of the UNet's weights, fails
    # the check, as a missing scorer file does.
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    unet.rename(unet.with_name("diffusion_pytorch_model.fp16.safetensors"))
    assert main(argv) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert (f"base model {folder} (tasks shapes_objects): a run reads files the folder "
            "lacks: unet/diffusion_pytorch_model.safetensors (it has "
            "diffusion_pytorch_model.fp16.safetensors, which a run does not read: safetensors "
            "under this name only)") in out
    # A path that names no folder is said to be one, not looked up as a hub id (whose
    # validation raised a traceback on './…').
    argv[4] = "./no-such-model"
    assert main(argv) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert ("base model ./no-such-model (tasks shapes_objects): no such folder (a run stops on "
            "it)") in out
