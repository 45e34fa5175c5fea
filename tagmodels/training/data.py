"""Turning a tagdata split into the flat tensors the models train on.

Models see images as vectors of N = H * W elements (fully connected Tagger) or as
(1, H, W) maps (ConvNet); the segmentation is flattened the same, row-major, way.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def head(self, n: int | None) -> "SplitTensors":
        """The first ``n`` examples (all of them when n is None)."""
        if n is None or n >= len(self):
            return self
        return SplitTensors(self.kind, self.images[:n], self.segmentation[:n], self.labels[:n])


def load_split(path: str, split: str, device: torch.device | str = "cpu", limit: int | None = None) -> SplitTensors:
    """Read ``split`` of the HDF5 file at ``path`` (optionally its first ``limit`` examples)."""
    with tagdata.open_dataset(path) as data:
        if split not in data.splits:
            raise UserError(f"{path} has no split {split!r}; it has {', '.join(data.splits)}")
        arrays = data[split].read(0, limit)
        kind = data.kind
    return SplitTensors(
        kind=kind,
        images=torch.from_numpy(arrays["images"]).to(device),
        segmentation=torch.from_numpy(arrays["segmentation"]).flatten(1).to(device),
        labels=torch.from_numpy(arrays["labels"]).to(device),
    )


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
