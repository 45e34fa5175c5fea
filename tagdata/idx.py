"""MNIST from the four standard IDX files, gzip-compressed or not.

IDX format: two zero bytes, a type byte, a byte giving the number of dimensions, one
big-endian uint32 per dimension, then the data in C order, big-endian. A gzip file is
recognised by its magic bytes, not its name. Every problem (missing directory or file,
bad magic, truncation, wrong shapes) is a :class:`UserError` naming the file.

What was read is recorded: the SHA-256 of each file's IDX content (after decompression, so
``.gz`` and raw copies agree), compared with the standard MNIST files' (LeCun et al.), so
that a dataset made from something else (Fashion-MNIST has the same shapes) says so.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tagdata.errors import UserError

MNIST_ENV = "TAGDATA_MNIST_DIR"
MNIST_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# SHA-256 of the IDX content (decompressed) of the standard MNIST files.
STANDARD_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in one IDX file (native byte order)."""
    return parse_idx(path, idx_content(path))


def idx_content(path: Path) -> bytes:
    """The IDX bytes of a file, decompressed when it is gzipped."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise UserError(f"{path}: corrupt or truncated gzip data ({err})") from None
    return raw


def parse_idx(path: Path, raw: bytes) -> np.ndarray:
    """The array of IDX bytes ``raw`` read from ``path`` (named in errors)."""
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_TYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        problem = "truncated" if len(raw) - header < expected else "has trailing bytes"
        raise UserError(
            f"{path}: IDX file {problem}: dimensions {'x'.join(map(str, dims))} need "
            f"{expected} data bytes, found {len(raw) - header}"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def mnist_dir(directory: str | Path | None) -> Path:
    """The MNIST directory: the argument, else $TAGDATA_MNIST_DIR; it must exist."""
    if directory is None:
        directory = os.environ.get(MNIST_ENV) or None
    if directory is None:
        raise UserError(
            f"TextureMNIST needs the MNIST IDX files: pass --mnist-dir DIR or set {MNIST_ENV}"
        )
    path = Path(directory)
    if not path.is_dir():
        raise UserError(f"MNIST directory {path} does not exist")
    return path


def find_file(directory: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in the directory."""
    for name in (stem, f"{stem}.gz"):
        if (directory / name).is_file():
            return directory / name
    raise UserError(f"MNIST file {stem}[.gz] not found in {directory}")


@dataclass(frozen=True)
class MnistPart:
    """MNIST "train" or "test": images uint8 (N, 28, 28), labels uint8 (N,), and what was
    read: file stem -> SHA-256 of its IDX content, and notes for the user."""

    images: np.ndarray
    labels: np.ndarray
    sha256: dict[str, str]
    notes: list[str] = field(default_factory=list)

    @property
    def standard(self) -> bool:
        """Whether every file read is the standard MNIST file of its name."""
        return all(STANDARD_SHA256.get(stem) == digest for stem, digest in self.sha256.items())


def _read_recorded(directory: Path, stem: str, sha256: dict[str, str], notes: list[str]) -> tuple[Path, np.ndarray]:
    path = find_file(directory, stem)
    if (directory / stem).is_file() and (directory / f"{stem}.gz").is_file():
        notes.append(f"{directory} holds both {stem} and {stem}.gz; read {path.name}")
    raw = idx_content(path)
    sha256[stem] = hashlib.sha256(raw).hexdigest()
    if sha256[stem] != STANDARD_SHA256[stem]:
        notes.append(f"{path} is not the standard MNIST file (SHA-256 {sha256[stem][:12]}...)")
    return path, parse_idx(path, raw)


def load_mnist(directory: Path, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels uint8 (N,) of MNIST "train" or "test"."""
    part = read_mnist(directory, which)
    return part.images, part.labels


def read_mnist(directory: Path, which: str) -> MnistPart:
    """MNIST "train" or "test" from ``directory``, with the record of what was read."""
    sha256: dict[str, str] = {}
    notes: list[str] = []
    image_stem, label_stem = MNIST_STEMS[which]
    image_path, images = _read_recorded(directory, image_stem, sha256, notes)
    label_path, labels = _read_recorded(directory, label_stem, sha256, notes)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise UserError(f"{image_path}: expected uint8 images (N, rows, cols), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise UserError(f"{label_path}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise UserError(f"{image_path} holds {len(images)} images but {label_path} {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise UserError(f"{label_path}: labels must be digits 0..9, found {labels.max()}")
    return MnistPart(images, labels, sha256, notes)


def download_mnist(root: Path) -> Path:
    """Fetch MNIST with torchvision into ``root``; returns the directory of the IDX files."""
    try:
        from torchvision.datasets import MNIST
    except Exception as err:  # ImportError, or a torchvision built against another torch
        raise UserError(
            f"--download needs torchvision, which does not import here ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no details'}); put the four MNIST IDX "
            "files in a directory and pass --mnist-dir DIR instead"
        ) from None
    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    except Exception as err:  # network or mirror failure
        raise UserError(f"downloading MNIST with torchvision failed: {err}") from None
    return root / "MNIST" / "raw"
