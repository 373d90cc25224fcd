"""The files ``DiffusionModel.load`` reads of a model (safetensors only): of a hub id, those
``erasebench weights`` looks for in the Hugging Face cache and downloads ahead; of a
diffusers folder, those it checks the folder for before a run spends hours on a model that
cannot load, or loads wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

# Where a model's file is: its path, True where the model has it but not here to read (a
# hub repository lists it, not downloaded yet), None where the model lacks it.
Find = Callable[[str], Path | bool | None]

# Not model_index.json: the components are loaded one by one, and a hub model's cache that
# a run filled has none (a folder is known as a diffusers folder by it: FOLDER_MARK).
FOLDER_MARK = "model_index.json"
_CONFIGS = ("scheduler/scheduler_config.json", "text_encoder/config.json",
            "unet/config.json", "vae/config.json",
            # Without it the tokenizer loads with no 77-token limit, and a long prompt (I2P
            # has many) overflows the text encoder's 77 positions in the first batch holding
            # one.
            "tokenizer/tokenizer_config.json")
# transformers 5 saves a tokenizer as tokenizer.json; SD v1.4's folder has the BPE files.
_TOKENIZER_LAYOUTS = (("tokenizer/tokenizer.json",),
                      ("tokenizer/vocab.json", "tokenizer/merges.txt"))
# Read where present; tokenizer_config.json holds the same special tokens.
_SPECIAL_TOKENS = "tokenizer/special_tokens_map.json"
_WEIGHTS = ("text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors")


def files_a_run_reads(find: Find) -> list[str]:
    """The files ``DiffusionModel.load`` reads of a model whose files ``find`` looks up:
    its configs; its tokenizer's files in the layouts it has (SD v1.4's, with its special
    tokens map, where it has neither); each weight file whole, or, where the model has
    only its index, the index and the shards it lists."""
    layouts = [layout for layout in _TOKENIZER_LAYOUTS if all(map(find, layout))]
    tokenizer = [name for layout in layouts for name in layout]
    if not layouts or find(_SPECIAL_TOKENS):
        tokenizer = [*(tokenizer or _TOKENIZER_LAYOUTS[-1]), _SPECIAL_TOKENS]
    return [*_CONFIGS, *tokenizer, *(file for name in _WEIGHTS
                                     for file in _weight_files(find, name))]


def _weight_files(find: Find, name: str) -> list[str]:
    """``name``, or its index and the shards the index lists (once it is there to read)."""
    index = find(f"{name}.index.json")
    if find(name) or not index:
        return [name]
    component = name.rsplit("/", 1)[0]
    shards = (sorted(set(json.loads(index.read_text())["weight_map"].values()))
              if isinstance(index, Path) else [])
    return [f"{name}.index.json", *(f"{component}/{shard}" for shard in shards)]


# What is named of a hub model nothing is known of: SD v1.4's files.
HUB_MODEL_FILES = tuple(files_a_run_reads(lambda name: None))


def missing_from_folder(folder: Path) -> list[str]:
    """Of the files ``DiffusionModel.load`` reads of the diffusers folder ``folder``, those
    it lacks; a missing weight file names the weight files its folder has instead (a
    pickled ``.bin``, an fp16 variant), which a run does not read."""
    def find(name: str) -> Path | None:
        return folder / name if (folder / name).is_file() else None

    lacking = [] if find(FOLDER_MARK) else [FOLDER_MARK]
    for name in files_a_run_reads(find):
        if find(name) or name == _SPECIAL_TOKENS:
            continue
        if any(name in layout for layout in _TOKENIZER_LAYOUTS):  # neither layout whole
            name = "tokenizer/tokenizer.json (or vocab.json and merges.txt)"
            if name in lacking:
                continue
        elif name in _WEIGHTS:
            name += _weights_instead(folder / name)
        lacking.append(name)
    return lacking


def _weights_instead(path: Path) -> str:
    others = sorted(other.name for other in path.parent.glob("*")
                    if other.suffix in (".safetensors", ".bin", ".ckpt", ".pt", ".pth"))
    return (f" (it has {', '.join(others)}, which a run does not read: safetensors under "
            "this name only)" if others else "")
