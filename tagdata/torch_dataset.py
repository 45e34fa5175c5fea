"""A torch Dataset over one split of a dataset file.

Lazy mode opens the file on first access in each process (and again after a fork, which
DataLoader workers do), so no h5py handle is ever shared between processes. With
``preload=True`` or a ``device`` the whole split is read once and kept as tensors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagdata.reader import Split, TagFile, open_dataset


def _example(arrays: dict[str, Any], index: int) -> dict[str, torch.Tensor]:
    """One example as tensors: segmentation and integer arrays as int64."""
    out = {}
    for name, array in arrays.items():
        item = array[index]
        item = torch.from_numpy(np.asarray(item)) if not isinstance(item, torch.Tensor) else item
        out[name] = item.long() if name in ("segmentation", "labels", "textures") else item
    return out


class SplitDataset(torch.utils.data.Dataset):
    """Examples of one split as dicts of tensors: images float32 (1, H, W), masks float32
    (L, H, W), segmentation int64 (H, W), labels int64 (objects,), and textures int64 (L,)
    for TextureMNIST."""

    def __init__(self, path: str | Path, split: str, *, preload: bool = False,
                 device: str | torch.device | None = None):
        self.path, self.split = Path(path), split
        self._file: TagFile | None = None
        self._pid: int | None = None
        self._tensors: dict[str, torch.Tensor] | None = None
        with open_dataset(self.path) as file:  # validates path and split now, in this process
            data = file[split]
            self._length = len(data)
            if preload or device is not None:
                # segmentation stays uint8 in memory (8x smaller); items convert to int64
                self._tensors = {name: torch.from_numpy(np.ascontiguousarray(array)).to(device)
                                 for name, array in data.read().items()}

    def __len__(self) -> int:
        return self._length

    def _split(self) -> Split:
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = open_dataset(self.path), os.getpid()
        return self._file[self.split]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self._length <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} examples")
        if self._tensors is not None:
            return _example(self._tensors, index)
        return _example(self._split().arrays, index)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = state["_pid"] = None  # an h5py handle must not travel to a worker
        return state

    def close(self) -> None:
        """Close this process's file handle (it reopens on the next access)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._pid = None
