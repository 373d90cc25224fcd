"""The files ``DiffusionModel.load`` reads of a model (safetensors only): of a hub id, those
``erasebench weights`` looks for in the Hugging Face cache and names to download ahead; of
a diffusers folder, those it checks the folder for before a run spends hours on a model
that cannot load, or loads wrong.
"""

from __future__ import annotations

from pathlib import Path

HUB_MODEL_FILES = (
    "model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json", "text_encoder/config.json",
    "text_encoder/model.safetensors", "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors")
_CONFIGS = ("model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
            "unet/config.json", "vae/config.json",
            # Without it the tokenizer loads with no 77-token limit, and a long prompt (I2P
            # has many) overflows the text encoder's 77 positions in the first batch holding
            # one.
            "tokenizer/tokenizer_config.json")
# transformers 5 saves a tokenizer as tokenizer.json; SD v1.4's folder has the BPE files.
_TOKENIZER_LAYOUTS = (("tokenizer/tokenizer.json",),
                      ("tokenizer/vocab.json", "tokenizer/merges.txt"))
_WEIGHTS = ("text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors")


def missing_from_folder(folder: Path) -> list[str]:
    """Of the files ``DiffusionModel.load`` reads of the diffusers folder ``folder``, those
    it lacks; a missing weight file names the weight files its folder has instead (a
    pickled ``.bin``, an fp16 variant), which a run does not read."""
    def present(*names: str) -> bool:
        return all((folder / name).is_file() for name in names)

    lacking = [name for name in _CONFIGS if not present(name)]
    if not any(present(*layout) for layout in _TOKENIZER_LAYOUTS):
        lacking.append("tokenizer/tokenizer.json (or vocab.json and merges.txt)")
    for name in _WEIGHTS:
        # Large weights may come in shards, listed in an index beside them.
        if present(name) or present(f"{name}.index.json"):
            continue
        component = (folder / name).parent
        others = sorted(path.name for path in component.glob("*")
                        if path.suffix in (".safetensors", ".bin", ".ckpt", ".pt", ".pth"))
        lacking.append(name + (f" (it has {', '.join(others)}, which a run does not read: "
                               "safetensors under this name only)" if others else ""))
    return lacking
