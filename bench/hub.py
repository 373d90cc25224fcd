"""Whether the Hugging Face hub is to be asked for a model's files, or only its cache read.

Without network (a cluster's compute node, a firewalled machine) huggingface_hub retries
every file it checks five times with back-off, about 23 s a file: loading SD v1.4 by its
hub id took minutes before it failed, or before it read the files its cache already held.
One short request first says whether the hub answers at all; if it does not, loading
reads the cache only, at once.
"""

from __future__ import annotations

import os
from functools import cache

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
