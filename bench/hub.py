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
from collections.abc import Sequence
from functools import cache

from erasebench.errors import short_reason

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


def download_to_cache(repo: str, files: Sequence[str]) -> dict[str, str]:
    """Downloads ``files`` of the hub repository ``repo`` (at main) into the Hugging Face
    cache; returns why each that could not be fetched was not. The hub is asked once
    first: without network huggingface_hub retries each file with back-off for ~25 s."""
    from huggingface_hub import hf_hub_download

    unreachable = hub_unreachable()
    if unreachable:
        return dict.fromkeys(files, short_reason(ConnectionError(unreachable)))
    failures = {}
    for name in files:
        try:
            hf_hub_download(repo, name)
        except Exception as error:  # no network, a gated repository, a missing file: all said
            failures[name] = short_reason(error)
    return failures


def missing_from_cache(repo: str, files: Sequence[str]) -> list[str]:
    """Of ``files`` of the hub repository ``repo`` (at main), those the Hugging Face
    cache lacks."""
    from huggingface_hub import try_to_load_from_cache

    return [name for name in files
            if not isinstance(try_to_load_from_cache(repo, name), str)]
