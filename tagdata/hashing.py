"""The split hash of the file format.

Each array is hashed as SHA-256 over its C-order bytes (the little-endian dtypes of
:mod:`tagdata.layout`), in row order. The split hash is the SHA-256 of the UTF-8 text made
of one line ``"<array name>:<hex digest>\\n"`` per array present, in the order
images, masks, segmentation, labels, textures.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping

import numpy as np

from tagdata.layout import ARRAY_ORDER


def split_digest(array_digests: Mapping[str, str]) -> str:
    """Combine per-array hex digests into the split's hex digest."""
    text = "".join(f"{name}:{array_digests[name]}\n" for name in ARRAY_ORDER if name in array_digests)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def array_digest(blocks: Iterable[np.ndarray]) -> str:
    """SHA-256 of an array given as consecutive row blocks, hashed as little-endian bytes
    whatever the machine's byte order."""
    digest = hashlib.sha256()
    for block in blocks:
        digest.update(np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<")))
    return digest.hexdigest()
