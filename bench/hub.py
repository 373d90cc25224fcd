"""Whether the Hugging Face hub is to be asked for a model's files, or only its cache read;
which files the cache lacks, and the command that downloads them.

Without network (a cluster's compute node, a firewalled machine) huggingface_hub retries
every file it checks five times with back-off, about 23 s a file: loading SD v1.4 by its
hub id took minutes before it failed, or before it read the files its cache already held.
One short request first says whether the hub answers at all; if it does not, loading
reads the cache only, at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

from erasebench.errors import short_reason
from erasebench.model_files import files_a_run_reads

# Long enough for a slow link to answer, short against the minutes the retries take.
PROBE_SECONDS = 5.0
_TRUE = ("1", "true", "yes", "on")


def hub_unreachable() -> str | None:
    """Why only the hub's cache is to be read (``HF_HUB_OFFLINE`` set, or the hub did not
    answer one request), or None where the hub answered."""
    from huggingface_hub import constants

    # The variable as it is now, and huggingface_hub's reading of it at import (or a
    # program's setting of it since).
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE or constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    return _probe(constants.ENDPOINT)


@cache  # once per process and endpoint: a run loads models many times
def _probe(endpoint: str) -> str | None:
    # huggingface_hub's own session, so its proxies and certificates are the ones used.
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=PROBE_SECONDS)
    except Exception as error:  # httpx's and requests' errors alike (huggingface_hub 0.x-2.x)
        reason = str(error).strip() or "no answer"
        return f"{endpoint} did not answer within {PROBE_SECONDS:g} s: {reason}"
    return None  # any answer, an error status included: the network is there


def hub_download_command() -> str:
    """The installed huggingface_hub's download command: `hf` since 0.34; 1.0 removed
    `huggingface-cli`, which the advice named before."""
    import huggingface_hub

    major, minor = (int(part) for part in huggingface_hub.__version__.split(".")[:2])
    return "hf download" if (major, minor) >= (0, 34) else "huggingface-cli download"


def download_line(repo: str, files: Sequence[str], revision: str | None = None) -> str:
    """The huggingface_hub command that downloads ``files`` of ``repo`` into the cache."""
    return " ".join([hub_download_command(), repo,
                     *(["--revision", revision] if revision else []), *files])


def download_model(repo: str) -> dict[str, str]:
    """Downloads into the Hugging Face cache the files of the hub model ``repo`` (at main)
    that a run reads and the cache lacks, in the layout the repository lists (its tokenizer
    as SD v1.4's BPE files or as tokenizer.json, its weights whole or in shards); returns
    why each that could not be fetched was not. The hub is asked once first: without
    network huggingface_hub retries each file with back-off for ~25 s."""
    from huggingface_hub import hf_hub_download, list_repo_files

    unreachable = hub_unreachable()
    if unreachable:
        return dict.fromkeys(missing_from_cache(repo)[0],
                             short_reason(ConnectionError(unreachable)))
    try:
        listed = set(list_repo_files(repo))
    except Exception as error:  # a gated, private or misspelt repository
        return dict.fromkeys(missing_from_cache(repo)[0], short_reason(error))
    cached = _cached_file_finder(repo)

    def find(name: str) -> Path | bool | None:
        return cached(name) or name in listed or None

    failures: dict[str, str] = {}
    # Twice: a sharded weight's shards are named by its index, downloaded the first time.
    for _ in range(2):
        for name in files_a_run_reads(find):
            if name in failures or cached(name):
                continue
            if name not in listed:
                failures[name] = "not in the repository"
                continue
            try:
                hf_hub_download(repo, name)
            except Exception as error:  # no network, a gated repository: all said
                failures[name] = short_reason(error)
    return failures


def missing_from_cache(repo: str, revision: str | None = None) -> tuple[list[str], int]:
    """Of the files a run reads of the hub model ``repo`` (at ``revision``, main where
    None), in the layout of those the Hugging Face cache holds (SD v1.4's where it holds
    none), those the cache lacks, and how many a run reads."""
    cached = _cached_file_finder(repo, revision)
    reads = files_a_run_reads(cached)
    return [name for name in reads if not cached(name)], len(reads)


def _cached_file_finder(repo: str, revision: str | None = None
                        ) -> Callable[[str], Path | None]:
    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> Path | None:
        path = try_to_load_from_cache(repo, name, revision=revision)
        # None, or huggingface_hub's sentinel for a file the hub said it lacks: not there
        return Path(path) if isinstance(path, str) else None

    return cached
