"""The Stable Diffusion v1 tokenizer, built offline from the CLIP BPE file open_clip ships.

SD v1.x uses OpenAI CLIP's byte-level BPE (49,408 tokens). ``open_clip`` carries that
merges file; from it we write the ``vocab.json``/``merges.txt`` pair that
``transformers.CLIPTokenizer`` reads, using CLIP's own id order (256 byte tokens, the
same with ``</w>``, one token per merge, then the two special tokens). The result is
the tokenizer of ``CompVis/stable-diffusion-v1-4`` without a download.
"""

from __future__ import annotations

import gzip
import json
import os
from functools import cache
from pathlib import Path

from erasebench.io import atomic_write_bytes

SD_MAX_LENGTH = 77
START, END = "<|startoftext|>", "<|endoftext|>"
# CLIP keeps the first 48,894 merges: 49,408 tokens = 512 byte tokens + merges + 2 specials.
_N_MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in codes), strict=True))


def clip_bpe_path() -> Path:
    import open_clip

    return Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"


def write_clip_tokenizer_files(folder: str | os.PathLike[str]) -> Path:
    """Writes vocab.json, merges.txt and tokenizer_config.json (SD v1 settings) to ``folder``."""
    folder = Path(folder)
    with gzip.open(clip_bpe_path()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _N_MERGES + 1]]
    byte_tokens = list(_bytes_to_unicode().values())
    tokens = byte_tokens + [token + "</w>" for token in byte_tokens]
    tokens += ["".join(merge) for merge in merges] + [START, END]
    vocab = {token: index for index, token in enumerate(tokens)}
    config = {
        "model_max_length": SD_MAX_LENGTH,
        "bos_token": START,
        "eos_token": END,
        "unk_token": END,
        "pad_token": END,
        "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer",
    }
    merges_text = "#version: 0.2\n" + "\n".join(" ".join(merge) for merge in merges) + "\n"
    atomic_write_bytes(folder / "merges.txt", merges_text.encode())
    atomic_write_bytes(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False).encode())
    atomic_write_bytes(folder / "tokenizer_config.json", json.dumps(config, indent=2).encode())
    return folder


def _tokenizer_folder() -> Path:
    from erasebench.cache import default_cache_dir

    return default_cache_dir() / "clip_tokenizer_v1"


@cache
def sd_tokenizer():  # -> transformers.CLIPTokenizer
    """The SD v1 CLIP tokenizer (``model_max_length=77``), built once and kept on disk."""
    from transformers import CLIPTokenizer

    folder = _tokenizer_folder()
    if not (folder / "tokenizer_config.json").exists():
        write_clip_tokenizer_files(folder)
    return CLIPTokenizer.from_pretrained(folder)
