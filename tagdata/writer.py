"""Writing a tagdata HDF5 file: chunking, compression, hashing, atomic rename.

Image-like arrays are chunked one example per chunk, so reading any example touches one
small chunk. Writing 80,000+ tiny gzip chunks through h5py's normal path is slow, so each
block's chunks are compressed with zlib in a thread pool (zlib releases the GIL) and hashed
in a thread of its own while the main thread renders the next block; the finished chunks go
into the file with ``write_direct_chunk``. At most two blocks are in flight. The datasets declare the standard gzip (deflate) filter,
so any HDF5 reader decompresses them as usual. The file is written under a temporary name
in the target directory and renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

import h5py
import numpy as np

from tagdata.atomic import atomic_write, check_writable
from tagdata.errors import UserError
from tagdata.hashing import split_digest
from tagdata.layout import SplitSource

LIBVER = ("v110", "latest")  # HDF5 >= 1.10 readers; its chunk index makes random reads fast
COMPRESSION_LEVEL = 1  # measured: higher levels cost far more time than they save space
SMALL_CHUNK_ROWS = 4096  # labels/textures: a few bytes per example, chunked in row blocks
TASK_ROWS = 256  # examples per compression task

Chunks = list[tuple[h5py.Dataset, int, Future]]


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an output path before any work is done."""
    check_writable(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists (pass --overwrite to replace it)")


def cpu_count() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _compress_rows(rows: np.ndarray, level: int) -> list[bytes]:
    return [zlib.compress(row, level) for row in rows]


def _write_chunks(pending: Chunks) -> None:
    for dataset, first_row, future in pending:
        zeros = (0,) * (dataset.ndim - 1)
        for i, chunk in enumerate(future.result()):
            dataset.id.write_direct_chunk((first_row + i,) + zeros, chunk)


def _hash_block(hashers: dict[str, Any], block: dict[str, np.ndarray]) -> None:
    for name, data in block.items():
        hashers[name].update(data)


def _write_split(
    file: h5py.File, source: SplitSource, pool: ThreadPoolExecutor, hasher: ThreadPoolExecutor,
    level: int, block_size: int, progress: Callable[[int], None] | None,
) -> str:
    group = file.create_group(source.name)
    datasets, hashers, small = {}, {}, {}
    for layout in source.arrays:
        rows = 1 if layout.per_example else min(source.length, SMALL_CHUNK_ROWS)
        datasets[layout.name] = group.create_dataset(
            layout.name, shape=(source.length,) + layout.tail, dtype=layout.dtype,
            chunks=(rows,) + layout.tail, compression="gzip", compression_opts=level,
        )
        hashers[layout.name] = hashlib.sha256()
        if not layout.per_example:
            small[layout.name] = []

    row, pending, pending_hash = 0, [], None
    for block in source.blocks(block_size):
        count = len(block["images"])
        arrays, submitted = {}, []
        for layout in source.arrays:
            data = arrays[layout.name] = np.ascontiguousarray(block[layout.name], dtype=layout.dtype)
            if data.shape != (count,) + layout.tail:
                raise ValueError(f"{source.name}/{layout.name}: block of shape {data.shape}, "
                                 f"expected {(count,) + layout.tail}")
            if layout.per_example:
                for start in range(0, count, TASK_ROWS):
                    future = pool.submit(_compress_rows, data[start:start + TASK_ROWS], level)
                    submitted.append((datasets[layout.name], row + start, future))
            else:
                small[layout.name].append(data)
        # One hashing thread takes the blocks in order, so each digest sees the rows in order.
        hashed = hasher.submit(_hash_block, hashers, arrays)
        _write_chunks(pending)  # the previous block, compressed while this one was made
        if pending_hash is not None:
            pending_hash.result()
        pending, pending_hash, row = submitted, hashed, row + count
        if progress is not None:
            progress(count)
    _write_chunks(pending)
    if pending_hash is not None:
        pending_hash.result()
    if row != source.length:
        raise ValueError(f"{source.name}: generator gave {row} examples, expected {source.length}")

    for name, parts in small.items():
        datasets[name][...] = np.concatenate(parts)
    digests = {name: hasher.hexdigest() for name, hasher in hashers.items()}
    for name, digest in digests.items():
        datasets[name].attrs["sha256"] = digest
    group.attrs["length"] = source.length
    group.attrs["sha256"] = digest = split_digest(digests)
    return digest


def write_file(
    out: Path, attrs: dict[str, Any], sources: Iterable[SplitSource], *, overwrite: bool,
    block_size: int, level: int = COMPRESSION_LEVEL, workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Write the splits and file attributes to ``out``; returns the split hashes.

    Splits of length 0 are left out. Adds the attributes ``splits`` (comma-separated names)
    and ``sha256_<split>``. On any error the temporary file is removed and ``out`` is
    untouched.
    """
    out = Path(out)
    check_output(out, overwrite)
    workers = workers or cpu_count()
    hashes: dict[str, str] = {}

    def write(temporary: Path) -> None:
        with ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(1) as hasher, \
                h5py.File(temporary, "w", libver=LIBVER, locking=False) as file:
            for key, value in attrs.items():
                file.attrs[key] = value
            for source in sources:
                if source.length > 0:
                    hashes[source.name] = _write_split(
                        file, source, pool, hasher, level, block_size, progress)
                    file.attrs[f"sha256_{source.name}"] = hashes[source.name]
            file.attrs["splits"] = ",".join(hashes)
        if out.exists() and not overwrite:
            raise UserError(f"{out} appeared while writing (pass --overwrite to replace it)")

    atomic_write(out, write)
    return hashes
