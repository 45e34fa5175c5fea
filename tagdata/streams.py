"""Named random streams: one independent generator per split (and one for the texture bank).

Each split draws all its randomness up front from its own stream, so the data do not
depend on the rendering block size, and resizing one split leaves the others unchanged.
The stream of a name is ``np.random.default_rng(np.random.SeedSequence([seed, index]))``
with the index below; these indices are part of the file format (changing them changes
every dataset).
"""

from __future__ import annotations

import numpy as np

STREAM_INDEX = {"train": 0, "valid": 1, "test": 2, "single": 3, "texture-bank": 4}


def stream(seed: int, name: str) -> np.random.Generator:
    """The random generator for one named stream of a dataset seed."""
    return np.random.default_rng(np.random.SeedSequence([seed, STREAM_INDEX[name]]))
