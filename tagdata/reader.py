"""Reading tagdata files, and the 2016 reference release's Fuel files, through one interface.

``open_dataset(path)`` gives a :class:`TagFile`; ``file[split]`` a :class:`Split` whose
arrays are :class:`ArrayView` objects: lazily read, sliceable like numpy arrays on their
first axis. Fuel files keep every source in one root dataset with a ``split`` attribute
giving each split's rows; they are mapped onto the same layout (see docs/datasets.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Union

import h5py
import numpy as np

from tagdata.errors import UserError
from tagdata.hashing import array_digest, split_digest
from tagdata.layout import ARRAY_ORDER, FORMAT, FORMAT_VERSION, UNSCORED, split_layout

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCORED_ABOVE = 0.9  # derived segmentation: a pixel is scored when its largest mask value exceeds this
Rows = Union[slice, np.ndarray]  # a unit-step slice or sorted distinct indices, split-relative


class ArrayView:
    """One array of a split, read from the file only when indexed.

    The first index selects examples (an int, a slice, or a sequence/array of ints or
    bools, in any order, repeats allowed); further indices apply to what was read.
    ``np.asarray(view)`` reads it all.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, read: Callable[[Rows], np.ndarray]):
        self.shape, self.dtype, self._read = tuple(shape), np.dtype(dtype), read

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<ArrayView shape={self.shape} dtype={self.dtype}>"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[:]
        return data if dtype is None else data.astype(dtype, copy=False)

    def _fetch(self, indices: np.ndarray) -> np.ndarray:
        """Rows at arbitrary indices: read each distinct row once, in file order."""
        if indices.size == 0:
            return np.empty((0,) + self.shape[1:], dtype=self.dtype)
        unique, inverse = np.unique(indices, return_inverse=True)
        if unique[-1] - unique[0] + 1 == len(unique):
            data = self._read(slice(int(unique[0]), int(unique[-1]) + 1))
        else:
            data = self._read(unique)
        return data[inverse.reshape(-1)]

    def __getitem__(self, key: Any) -> np.ndarray:
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) and key else (key, ())
        n = len(self)
        if rows is Ellipsis:
            return self[:][key]
        if isinstance(rows, (int, np.integer)):
            index = int(rows) + n if rows < 0 else int(rows)
            if not 0 <= index < n:
                raise IndexError(f"index {int(rows)} out of range for {n} examples")
            return self._read(slice(index, index + 1))[0][rest]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(n)
            if step == 1:
                data = self._read(slice(start, stop)) if stop > start else self._fetch(np.empty(0, np.int64))
            else:
                data = self._fetch(np.arange(start, stop, step))
        else:
            indices = np.asarray(rows)
            if indices.dtype == bool:
                if indices.shape != (n,):
                    raise IndexError(f"boolean index needs shape ({n},), got {indices.shape}")
                indices = np.flatnonzero(indices)
            if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
                raise IndexError("rows must be an int, a slice, or a 1-D sequence of ints or bools")
            indices = np.where(indices < 0, indices + n, indices).astype(np.int64)
            if indices.size and (indices.min() < 0 or indices.max() >= n):
                raise IndexError(f"row index out of range for {n} examples")
            data = self._fetch(indices)
        return data[(slice(None),) + rest] if rest else data


class Split:
    """One split of a file: ``len(split)``, lazily read arrays, and :meth:`read`."""

    def __init__(self, name: str, arrays: dict[str, ArrayView]):
        self.name = name
        self.arrays = arrays
        self.images: ArrayView = arrays["images"]
        self.masks: ArrayView = arrays["masks"]
        self.segmentation: ArrayView = arrays["segmentation"]
        self.labels: ArrayView = arrays["labels"]
        self.textures: ArrayView | None = arrays.get("textures")

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"<Split {self.name!r}: {len(self)} examples>"

    def read(self, start: int | None = None, stop: int | None = None) -> dict[str, np.ndarray]:
        """Examples start..stop-1 of every array, in memory."""
        return {name: view[start:stop] for name, view in self.arrays.items()}

    def compute_hash(self, block: int = 4096) -> str:
        """Recompute the split hash (tagdata.hashing) from the stored arrays."""
        n = len(self)
        return split_digest({
            name: array_digest(view[i:i + block] for i in range(0, n, block))
            for name, view in self.arrays.items()
        })


class TagFile:
    """An open dataset file. Use as a context manager, or call :meth:`close`.

    ``name``, ``kind`` ("shapes" or "texture-mnist"), ``spec`` (dict), ``splits`` (tuple),
    ``hashes`` (split -> stored SHA-256, empty for Fuel files), ``attrs`` (root attributes),
    ``layout`` ("tagdata" or "fuel").
    """

    def __init__(self, file: h5py.File, path: Path, name: str, kind: str, spec: dict,
                 splits: dict[str, Split], hashes: dict[str, str], layout: str):
        self._file, self.path, self.name, self.kind, self.spec = file, path, name, kind, spec
        self._splits, self.hashes, self.layout = splits, hashes, layout
        self.splits: tuple[str, ...] = tuple(splits)
        self.attrs: dict[str, Any] = {k: _plain(v) for k, v in file.attrs.items()}

    def __getitem__(self, split: str) -> Split:
        if split not in self._splits:
            raise UserError(f"{self.path} has no split '{split}' (it has {', '.join(self.splits)})")
        return self._splits[split]

    def __enter__(self) -> "TagFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"<TagFile {self.name!r} ({self.kind}, {self.layout}): {', '.join(self.splits)}>"


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _dataset_view(dataset: h5py.Dataset, offset: int, length: int, dtype: str,
                  convert: Callable[[np.ndarray, Rows], np.ndarray] | None = None,
                  tail: tuple[int, ...] | None = None) -> ArrayView:
    """A view of rows offset..offset+length-1 of a dataset, optionally converted."""

    def read(rows: Rows) -> np.ndarray:
        shifted = slice(rows.start + offset, rows.stop + offset) if isinstance(rows, slice) else rows + offset
        try:
            data = dataset[shifted]
        except OSError as err:  # a damaged chunk: h5py names neither the file nor the array
            raise UserError(f"{dataset.file.filename}: cannot read {dataset.name} (damaged data: "
                            f"{str(err).splitlines()[0]}); make the file again") from None
        return convert(data, rows) if convert else data.astype(dtype, copy=False)

    shape = (length,) + (tail if tail is not None else dataset.shape[1:])
    return ArrayView(shape, dtype, read)


def _check_layout(path: Path, name: str, group: h5py.Group) -> None:
    """Refuse a split whose arrays are not of the layout tagdata writes (uint8 images, masks
    of another size, images without their (1, H, W) axes, a short segmentation), naming the
    array, before a model meets them."""
    images = group["images"]
    height, width = images.shape[-2:] if images.ndim >= 3 else (0, 0)
    layers = group["masks"].shape[1] if group["masks"].ndim == 4 else 0
    objects = group["labels"].shape[1] if group["labels"].ndim == 2 else 0
    length = len(images)
    for layout in split_layout(height, width, layers, objects, "textures" in group):
        data = group[layout.name]
        expected = np.dtype(layout.dtype).newbyteorder("=")
        if data.dtype.newbyteorder("=") != expected or data.shape != (length,) + layout.tail:
            raise UserError(
                f"{path}: split '{name}' {layout.name} are {data.dtype.newbyteorder('=')} of shape {data.shape}, "
                f"where tagdata writes {expected} of shape {(length,) + layout.tail} (a foreign or damaged file)"
            )


def _native(file: h5py.File, path: Path) -> TagFile:
    version = int(file.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise UserError(f"{path} uses tagdata format version {version}; this tagdata reads up to "
                        f"{FORMAT_VERSION} (upgrade tagdata)")
    names = [s for s in str(_plain(file.attrs["splits"])).split(",") if s]
    splits = {}
    for name in names:
        group = file.get(name)
        missing = [a for a in ARRAY_ORDER[:4] if group is None or a not in group]
        if missing:
            raise UserError(f"{path}: split '{name}' lacks {', '.join(missing)} (corrupt file?)")
        _check_layout(path, name, group)
        splits[name] = Split(name, {
            a: _dataset_view(group[a], 0, len(group[a]), group[a].dtype.newbyteorder("="))
            for a in ARRAY_ORDER if a in group
        })
    spec = tomllib.loads(_plain(file.attrs["spec"]))
    hashes = {name: _plain(file.attrs[f"sha256_{name}"]) for name in names}
    return TagFile(file, path, _plain(file.attrs["name"]), _plain(file.attrs["kind"]), spec,
                   splits, hashes, FORMAT)


def _fuel_ranges(file: h5py.File, path: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """split -> source -> (start, stop) from Fuel's ``split`` attribute."""
    table = file.attrs["split"]
    ranges: dict[str, dict[str, tuple[int, int]]] = {}
    for row in table:
        if "indices" in table.dtype.names and row["indices"]:
            raise UserError(f"{path}: Fuel splits given by index lists are not supported")
        split, source = _plain(row["split"]), _plain(row["source"])
        ranges.setdefault(split, {})[source] = (int(row["start"]), int(row["stop"]))
    return ranges


def _fuel_split(file: h5py.File, path: Path, name: str, ranges: dict[str, tuple[int, int]],
                kind: str) -> Split:
    required = ["features", "mask", "targets"] + (["codes"] if kind == "texture-mnist" else [])
    missing = [s for s in required if s not in ranges or s not in file]
    if missing:
        raise UserError(f"{path}: Fuel split '{name}' lacks source {', '.join(missing)}")
    lengths = {s: ranges[s][1] - ranges[s][0] for s in required}
    if len(set(lengths.values())) != 1:
        raise UserError(f"{path}: Fuel split '{name}' has sources of different lengths {lengths}")
    length = lengths["features"]
    features, mask, targets = file["features"], file["mask"], file["targets"]
    start = {s: ranges[s][0] for s in required}
    height, width = features.shape[-2:]
    images = _dataset_view(features, start["features"], length, "float32")
    layers = mask.shape[1]

    if kind == "shapes":
        # The reference mask is one-hot over the objects, 1/layers everywhere unscored, and
        # has no background layer: add one from the binary image (see docs/datasets.md).
        def masks_of(data: np.ndarray, rows: Rows) -> np.ndarray:
            objects = data.reshape(len(data), layers, height, width).astype(np.float32)
            image = images._read(rows)[:, 0]
            out = np.empty((len(data), layers + 1, height, width), dtype=np.float32)
            out[:, 0] = image == 0
            np.multiply(objects, (image != 0)[:, None], out=out[:, 1:])
            return out

        first_object = 1
        mask_tail = (layers + 1, height, width)
    else:
        def masks_of(data: np.ndarray, rows: Rows) -> np.ndarray:
            return data.reshape(len(data), layers, height, width).astype(np.float32)

        first_object = 0
        mask_tail = (layers, height, width)

    def segmentation_of(data: np.ndarray, rows: Rows) -> np.ndarray:
        reference = data.reshape(len(data), layers, height, width)
        owner = reference.argmax(axis=1) + first_object
        return np.where(reference.max(axis=1) > SCORED_ABOVE, owner, UNSCORED).astype(np.uint8)

    def labels_of(data: np.ndarray, rows: Rows) -> np.ndarray:
        return data.reshape(len(data), -1).astype(np.int64)

    label_width = int(np.prod(targets.shape[1:], dtype=np.int64))
    arrays = {
        "images": images,
        "masks": _dataset_view(mask, start["mask"], length, "float32", masks_of, mask_tail),
        "segmentation": _dataset_view(mask, start["mask"], length, "uint8", segmentation_of,
                                      (height, width)),
        "labels": _dataset_view(targets, start["targets"], length, "int64", labels_of, (label_width,)),
    }
    if kind == "texture-mnist":
        arrays["textures"] = _dataset_view(file["codes"], start["codes"], length, "int64")
    return Split(name, arrays)


def _fuel(file: h5py.File, path: Path) -> TagFile:
    kind = "texture-mnist" if "codes" in file else "shapes"
    ranges = _fuel_ranges(file, path)
    order = ["train", "valid", "test", "single"]
    names = sorted(ranges, key=lambda s: (order.index(s) if s in order else len(order), s))
    splits = {name: _fuel_split(file, path, name, ranges[name], kind) for name in names}
    spec = {
        "name": path.stem, "kind": kind, "layout": "fuel",
        "image_size": list(file["features"].shape[-2:]),
        "splits": {name: len(split) for name, split in splits.items()},
    }
    return TagFile(file, path, path.stem, kind, spec, splits, {}, "fuel")


def open_dataset(path: str | Path) -> TagFile:
    """Open a tagdata HDF5 file (or a 2016 reference Fuel file) for reading."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"dataset file {path} does not exist")
    try:
        file = h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"{path} is not a readable HDF5 file ({err})") from None
    try:
        if _plain(file.attrs.get("format")) == FORMAT:
            return _native(file, path)
        if "features" in file and "split" in file.attrs:
            return _fuel(file, path)
        raise UserError(f"{path} is neither a tagdata file nor a Fuel file of the 2016 reference release")
    except UserError:
        file.close()
        raise
    except (KeyError, ValueError, OSError, TypeError, tomllib.TOMLDecodeError) as err:
        file.close()
        raise UserError(f"{path}: corrupt dataset file ({type(err).__name__}: {err})") from None
