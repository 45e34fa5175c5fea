"""Data fixtures shared by the tests: MNIST directories (real and tiny), small spec files
and small generated datasets."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import torch

from tagdata import make_dataset
from tagdata.specs import (
    resolve_spec,
    spec_from_dict,
    spec_to_dict,
    spec_to_toml,
    with_overrides,
)

# One thread: the suite's models are tiny, and torch's spinning worker threads make a
# 2-core machine that is busy with anything else many times slower (results are exact at a
# fixed thread count either way).
torch.set_num_threads(1)

# CI clones the project with shared/ beside it.
REAL_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
TINY_TRAIN, TINY_TEST = 60, 24  # images in the tiny MNIST files


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write an IDX file (uint8 data), gzipped when asked."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.fixture(scope="session")
def idx_writer() -> Callable[..., Path]:
    return write_idx


def tiny_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like images: a solid bar with soft (mid-grey) edges on black, and labels."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        top, left = rng.integers(3, 12, size=2)
        images[i, top:top + 14, left:left + 6] = 255
        images[i, top - 1, left:left + 6] = 120
        images[i, top:top + 14, left + 6] = 60
    return images, rng.integers(0, 10, size=n).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_mnist_dir(tmp_path_factory) -> Path:
    """A directory of small MNIST-format files: train gzipped, test plain."""
    directory = tmp_path_factory.mktemp("tiny-mnist")
    for which, n, compress in (("train", TINY_TRAIN, True), ("t10k", TINY_TEST, False)):
        images, labels = tiny_digits(n, seed=n)
        suffix = ".gz" if compress else ""
        write_idx(directory / f"{which}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(directory / f"{which}-labels-idx1-ubyte{suffix}", labels, compress)
    return directory


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    if not (REAL_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found at {REAL_MNIST}")
    return REAL_MNIST


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """Full-size MNIST files: the real ones where present, else synthetic ones of the same
    shapes (60,000 + 10,000 bar images), so that the built-in specs' ranges apply."""
    if (REAL_MNIST / "train-images-idx3-ubyte.gz").is_file():
        return REAL_MNIST
    directory = tmp_path_factory.mktemp("synthetic-mnist")
    rng = np.random.default_rng(0)
    rows = np.arange(28)
    for which, n in (("train", 60000), ("t10k", 10000)):
        top, left = rng.integers(3, 12, (2, n, 1, 1))
        bars = ((rows[:, None] >= top) & (rows[:, None] < top + 14) & (rows >= left) & (rows < left + 6))
        write_idx(directory / f"{which}-images-idx3-ubyte.gz", bars.astype(np.uint8) * 255, compress=True)
        write_idx(directory / f"{which}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8), compress=True)
    return directory


def tiny_texture_spec(name: str, train: int = 30, valid: int = 12, test: int = 16, seed: int | None = None):
    """A built-in TextureMNIST spec narrowed to the tiny MNIST files."""
    data = spec_to_dict(resolve_spec(name))
    data["sources"] = {
        "train": {"file": "train", "start": 0, "stop": 40},
        "valid": {"file": "train", "start": 40, "stop": TINY_TRAIN},
        "test": {"file": "test", "start": 0, "stop": TINY_TEST},
    }
    data["splits"] = {"train": train, "valid": valid, "test": test}
    if seed is not None:
        data["seed"] = seed
    return spec_from_dict(data)


@pytest.fixture(scope="session")
def tiny_texture_spec_file(tmp_path_factory) -> Path:
    """TOML file of a tiny TextureMNIST2 spec."""
    path = tmp_path_factory.mktemp("specs") / "tiny-tm2.toml"
    path.write_text(spec_to_toml(tiny_texture_spec("texture-mnist2")))
    return path


@pytest.fixture(scope="session")
def shapes_file(tmp_path_factory) -> Path:
    """A small Shapes dataset file (all four splits)."""
    spec = with_overrides(resolve_spec("shapes"), train=64, valid=16, test=40, single=12)
    path = tmp_path_factory.mktemp("shapes") / "shapes.h5"
    make_dataset(spec, path)
    return path


@pytest.fixture(scope="session")
def texture_file(tmp_path_factory, tiny_mnist_dir) -> Path:
    """A small TextureMNIST2 file made from the tiny MNIST files."""
    path = tmp_path_factory.mktemp("tm2") / "tm2.h5"
    make_dataset(tiny_texture_spec("texture-mnist2"), path, mnist_dir=tiny_mnist_dir)
    return path


@pytest.fixture(scope="session")
def texture_spec() -> Callable:
    """``texture_spec(name, train=, valid=, test=, seed=)``: a tiny TextureMNIST spec."""
    return tiny_texture_spec


@pytest.fixture(scope="session")
def digits_maker() -> Callable:
    """``digits_maker(n, seed)``: digit-like uint8 images and labels."""
    return tiny_digits


def write_fuel(path, splits: dict[str, dict[str, np.ndarray]], kind: str) -> None:
    """A file in the reference release's Fuel layout, built from native arrays."""
    sources = {"features": [], "targets": [], "mask": []} | ({"codes": []} if kind == "texture-mnist" else {})
    rows, start = [], 0
    for name, data in splits.items():
        n = len(data["images"])
        if kind == "shapes":  # one-hot over the objects, 1/objects wherever unscored
            objects = data["masks"].shape[1] - 1
            seg = data["segmentation"]
            mask = np.where(seg[:, None] == 255, np.float32(1 / objects),
                            (seg[:, None] - 1 == np.arange(objects)[:, None, None]).astype(np.float32))
        else:
            mask = data["masks"]
        sources["features"].append(data["images"])
        sources["targets"].append(data["labels"])
        sources["mask"].append(mask[:, :, None])
        if kind == "texture-mnist":
            sources["codes"].append(data["textures"])
        rows += [(name.encode(), source.encode(), start, start + n, None, True, b"") for source in sources]
        start += n
    dtype = np.dtype([("split", "S5"), ("source", "S8"), ("start", "<i8"), ("stop", "<i8"),
                      ("indices", h5py.ref_dtype), ("available", "?"), ("comment", "S1")])
    with h5py.File(path, "w") as f:
        for source, parts in sources.items():
            f[source] = np.concatenate(parts)
        table = np.empty(len(rows), dtype=dtype)
        for i, row in enumerate(rows):
            table[i] = row[:4] + (h5py.Reference(), True, b"")
        f.attrs["split"] = table


@pytest.fixture(scope="session")
def fuel_writer() -> Callable:
    """``fuel_writer(path, {split: arrays}, kind)``: write the reference release's layout."""
    return write_fuel
