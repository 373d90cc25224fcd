"""erasebench: a benchmark suite for concept erasure in text-to-image diffusion models.

Importing this package is cheap on purpose (no torch): the CLI lists plugins without it.
The core lives in submodules: ``registry``, ``specs``, ``models``, ``edits``, ``generate``,
``cache``, ``results``, ``runner``, ``cli`` and ``testing``.
"""

from erasebench.errors import UserError

__all__ = ["UserError", "__version__"]
__version__ = "0.1.0"
