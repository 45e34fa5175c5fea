"""Procedural datasets for perceptual grouping: Shapes and TextureMNIST1/2.

Public API: :func:`open_dataset` (files written by ``tagtool make-dataset`` and the 2016
reference release's Fuel files), :class:`SplitDataset` (a torch Dataset over one split),
:func:`make_dataset` and the spec helpers, and :class:`UserError`. ``SplitDataset`` is
imported on first use so that ``import tagdata`` does not pay for importing torch.
"""

from typing import Any

from tagdata.build import make_dataset
from tagdata.errors import UserError
from tagdata.reader import ArrayView, Split, TagFile, open_dataset
from tagdata.specs import load_spec, resolve_spec, with_overrides
from tagdata.version import __version__

__all__ = [
    "ArrayView", "Split", "SplitDataset", "TagFile", "UserError", "__version__",
    "load_spec", "make_dataset", "open_dataset", "resolve_spec", "with_overrides",
]


def __getattr__(name: str) -> Any:
    if name == "SplitDataset":
        from tagdata.torch_dataset import SplitDataset

        return SplitDataset
    raise AttributeError(f"module 'tagdata' has no attribute {name!r}")
