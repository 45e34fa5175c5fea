"""What a split of a tagdata HDF5 file holds: array names, per-example shapes and dtypes.

Shared by the generators (which produce blocks of these arrays), the writer (which
creates, hashes and compresses them) and the reader. Dtypes are explicitly little-endian
so that the bytes, and therefore the hashes, are the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

FORMAT = "tagdata"
FORMAT_VERSION = 1
# Fixed order of the arrays in a split; the split hash is defined over this order.
ARRAY_ORDER = ("images", "masks", "segmentation", "labels", "textures")
UNSCORED = 255  # segmentation value of pixels that are not scored


@dataclass(frozen=True)
class ArrayLayout:
    """One array of a split: name, shape of one example, dtype, and whether it is chunked
    one example per chunk (the image-like arrays) or in blocks of rows (the small ones)."""

    name: str
    tail: tuple[int, ...]
    dtype: str
    per_example: bool


@dataclass(frozen=True)
class SplitSource:
    """A split to write: its arrays and a function yielding them in row order, in blocks of
    at most the given number of examples."""

    name: str
    length: int
    arrays: tuple[ArrayLayout, ...]
    blocks: Callable[[int], Iterator[dict[str, np.ndarray]]]


def split_layout(
    height: int, width: int, layers: int, objects: int, textures: bool
) -> tuple[ArrayLayout, ...]:
    """The arrays of one split (layer 0 of ``masks`` is the background)."""
    arrays = [
        ArrayLayout("images", (1, height, width), "<f4", True),
        ArrayLayout("masks", (layers, height, width), "<f4", True),
        ArrayLayout("segmentation", (height, width), "|u1", True),
        ArrayLayout("labels", (objects,), "<i8", False),
    ]
    if textures:
        arrays.append(ArrayLayout("textures", (layers,), "<i8", False))
    return tuple(arrays)
