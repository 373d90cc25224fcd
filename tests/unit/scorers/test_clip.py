"""CLIP through open_clip: the real loading path on weight files the tests write, scores
equal to torchmetrics' CLIP score computed through the same network."""

import importlib

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from erasebench.errors import UnknownNameError, UserError
from erasebench.scorers.clip import (
    SAFETENSORS_NAME,
    TINY_ARCHITECTURE,
    ClipScorer,
    clip_weight_file,
    hub_download_command,
)

clip_score_module = importlib.import_module("torchmetrics.functional.multimodal.clip_score")


def _images(count=4, size=48):
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
            for _ in range(count)]


class _AsTransformers:
    """torchmetrics' CLIP score expects a transformers CLIPModel/CLIPProcessor pair; this
    presents the open_clip network the scorer loaded in that shape."""

    config = None  # no text_config: torchmetrics then does not truncate (CLIP's 77 tokens)

    def __init__(self, scorer):
        self.model, self.preprocess, self.tokenizer = scorer._load()

    def get_image_features(self, pixel_values):
        return self.model.encode_image(pixel_values)

    def get_text_features(self, input_ids, attention_mask):
        return self.model.encode_text(input_ids)

    def to(self, device):
        return self

    def __call__(self, images=None, text=None, return_tensors="pt", padding=True):
        if images is not None:
            pils = [Image.fromarray(i.permute(1, 2, 0).numpy()) for i in images]
            return {"pixel_values": torch.stack([self.preprocess(p) for p in pils])}
        tokens = self.tokenizer(text)
        return {"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}


def test_scores_match_torchmetrics_on_the_same_network(scorer_home):
    scorer = ClipScorer(TINY_ARCHITECTURE, batch_size=3)
    images, texts = _images(), ["a cat", "a red square", "nothing at all", "a photo"]
    ours = scorer.scores(images, texts)
    adapter = _AsTransformers(scorer)
    tensors = [torch.from_numpy(np.array(i)).permute(2, 0, 1) for i in images]
    with torch.no_grad():
        reference, count = clip_score_module._clip_score_update(tensors, texts, adapter, adapter)
    assert count == 4
    torch.testing.assert_close(ours, reference.clamp(min=0), rtol=1e-4, atol=1e-4)
    # torchmetrics' per-call value (what the papers averaged) is the same clipped number
    single = clip_score_module.clip_score(tensors[0], texts[0], lambda: (adapter, adapter))
    assert float(single) == pytest.approx(float(ours[0]), abs=1e-4)
    unclipped = 100 * (scorer.image_embeddings(images) * scorer.text_embeddings(texts)).sum(1)
    torch.testing.assert_close(unclipped, reference, rtol=1e-4, atol=1e-4)
    assert scorer.version().startswith(f"open_clip {__import__('open_clip').__version__} "
                                       f"{TINY_ARCHITECTURE} sha256:")


def test_openai_weights_are_found_in_the_hugging_face_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    save_file({"x": torch.zeros(1)}, str(snapshot / SAFETENSORS_NAME))
    found = clip_weight_file("ViT-B-32-quickgelu")
    assert found.path == snapshot / SAFETENSORS_NAME and found.present()
    assert ClipScorer("ViT-B-32-quickgelu").weight_file.path == found.path


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    scorer = ClipScorer("ViT-L-14-quickgelu")
    with pytest.raises(UserError) as caught:
        scorer.scores(_images(1), ["a"])
    message = str(caught.value)
    assert "timm/vit_large_patch14_clip_224.openai" in message and SAFETENSORS_NAME in message
    assert str(tmp_path) in message and "clip_weights" in message
    # The command the installed huggingface_hub has: 1.0 removed `huggingface-cli`.
    assert (f"`hf download timm/vit_large_patch14_clip_224.openai {SAFETENSORS_NAME}` puts it "
            "there" in message)
    monkeypatch.setattr(huggingface_hub, "__version__", "0.33.4")
    assert hub_download_command() == "huggingface-cli download"


def test_an_explicit_path_and_an_unknown_architecture():
    assert clip_weight_file("ViT-B-32-quickgelu", "/w/clip.safetensors").path.name == \
        "clip.safetensors"
    with pytest.raises(UnknownNameError, match="ViT-B-32-quickgelu"):
        ClipScorer("ViT-B-33")
