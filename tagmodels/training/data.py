"""Turning a tagdata split into the flat tensors the models train on.

Models see images as vectors of N = H * W elements (fully connected Tagger) or as
(1, H, W) maps (ConvNet); the segmentation is flattened the same, row-major, way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import tagdata
from tagdata.errors import UserError
from tagdata.layout import UNSCORED


@dataclass
class SplitTensors:
    """One split on one device: images (n, 1, H, W), segmentation (n, H*W), labels (n, objects)."""

    kind: str
    images: torch.Tensor
    segmentation: torch.Tensor
    labels: torch.Tensor

    @property
    def x(self) -> torch.Tensor:
        """The images as vectors (n, N)."""
        return self.images.flatten(1)

    def __len__(self) -> int:
        return self.images.shape[0]

    def check_inputs(self, n_inputs: int, path: str, kind: str | None = None) -> None:
        """Refuse data of another size, or (given ``kind``, binary or continuous) of another
        kind, than the model takes: another dataset's file."""
        if self.x.shape[1] != n_inputs:
            raise UserError(f"{path} has {self.x.shape[1]} pixels per image but the model takes {n_inputs}")
        if kind is not None and input_kind(self.kind) != kind:
            raise UserError(f"{path} holds {self.kind} data ({input_kind(self.kind)} images) but the model "
                            f"was made for {kind} images")

    def head(self, n: int | None) -> "SplitTensors":
        """The first ``n`` examples (all of them when n is None)."""
        if n is None or n >= len(self):
            return self
        return SplitTensors(self.kind, self.images[:n], self.segmentation[:n], self.labels[:n])


def load_split(path: str, split: str, device: torch.device | str = "cpu", limit: int | None = None) -> SplitTensors:
    """Read ``split`` of the HDF5 file at ``path`` (optionally its first ``limit`` examples)."""
    arrays, kind = _read_split(path, split, limit)
    bad = ~np.isfinite(arrays["images"])
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))[0])
        raise UserError(
            f"{path}: split {split!r} has {int(bad.sum())} pixels that are NaN or infinite (the first in example "
            f"{first}); the images must be finite numbers: make the file again"
        )
    return SplitTensors(
        kind=kind,
        images=torch.from_numpy(arrays["images"]).to(device),
        segmentation=torch.from_numpy(arrays["segmentation"]).flatten(1).to(device),
        labels=torch.from_numpy(arrays["labels"]).to(device),
    )


def object_pixels(path: str, split: str, limit: int | None = None) -> np.ndarray:
    """bool (n, H, W): the pixels the background (mask layer 0, docs/datasets.md) owns less than half of."""
    return _read_split(path, split, limit)[0]["masks"][:, 0] < 0.5


def _read_split(path: str, split: str, limit: int | None) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of ``split``'s first ``limit`` examples and the data kind; a missing split is one line."""
    with tagdata.open_dataset(path) as data:
        if split not in data.splits:
            raise UserError(f"{path} has no split {split!r}; it has {', '.join(data.splits)}")
        return data[split].read(0, limit), data.kind


def data_identity(path: str) -> dict[str, object]:
    """What a run records of its data file, to know it again on resume: the split hashes
    and the seed the file was made with (Fuel files have neither)."""
    with tagdata.open_dataset(path) as data:
        return {"seed": data.attrs.get("seed"), "sha256": dict(data.hashes)}


def to_device_async(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor (a step's indices) copied to ``device`` without making the host wait.

    On CUDA the copy goes through page-locked memory: from pageable memory the driver may
    first wait for everything queued on the device. Elsewhere it is a plain (or no) copy."""
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def most_objects(segmentation: torch.Tensor) -> int:
    """The largest number of distinct scored objects in one example of (n, N) segmentations."""
    if len(segmentation) == 0:
        return 0
    present = torch.zeros(len(segmentation), 256, dtype=torch.bool, device=segmentation.device)
    present.scatter_(1, segmentation.long(), True)
    return int(present[:, :UNSCORED].sum(dim=1).max())


def input_kind(dataset_kind: str) -> str:
    """Shapes are binary images; TextureMNIST images are continuous."""
    return "binary" if dataset_kind == "shapes" else "continuous"
