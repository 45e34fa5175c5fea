"""From a spec to a file: pick the generator, load its inputs, hand the splits to the writer.

Everything that can fail because of user input (the output path, MNIST files, their sizes)
is checked before the output file is created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tagdata import idx, shapes, texture_mnist
from tagdata.errors import UserError
from tagdata.layout import FORMAT, FORMAT_VERSION, SplitSource
from tagdata.specs import ShapesSpec, Spec, TextureMnistSpec, spec_to_toml
from tagdata.version import __version__
from tagdata.writer import check_output, write_file

BLOCK_SIZE = 2048  # examples rendered at a time; bounds memory, does not change the data


def _texture_sources(spec: TextureMnistSpec, mnist_dir: str | Path | None) -> list[SplitSource]:
    active = [split for split in spec.split_names if spec.splits[split] > 0]
    if not active:
        return []
    directory = idx.mnist_dir(mnist_dir)
    mnist = {name: idx.load_mnist(directory, name)
             for name in sorted({spec.sources[split].file for split in active})}
    bank = texture_mnist.spec_bank(spec)
    sources = []
    for split in active:
        source = spec.sources[split]
        images, labels = mnist[source.file]
        if images.shape[1:] != spec.image_size:
            raise UserError(f"MNIST {source.file} images are {images.shape[1]}x{images.shape[2]}, "
                            f"the spec's image_size is {list(spec.image_size)}")
        if source.stop > len(images):
            raise UserError(
                f"split '{split}' needs MNIST {source.file} images {source.start}..{source.stop - 1}, "
                f"but {directory} holds {len(images)} {source.file} images"
            )
        sources.append(texture_mnist.split_source(
            spec, split, bank, images[source.start:source.stop], labels[source.start:source.stop]))
    return sources


def split_sources(spec: Spec, mnist_dir: str | Path | None = None) -> list[SplitSource]:
    """The non-empty splits of a spec, ready to be rendered block by block."""
    if isinstance(spec, ShapesSpec):
        return [shapes.split_source(spec, split) for split in spec.split_names if spec.splits[split] > 0]
    return _texture_sources(spec, mnist_dir)


def file_attributes(spec: Spec) -> dict[str, object]:
    """The root attributes every tagdata file carries (the writer adds splits and hashes)."""
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": spec.name, "kind": spec.kind,
        "seed": spec.seed, "spec": spec_to_toml(spec), "tagdata_version": __version__,
    }


def make_dataset(
    spec: Spec, out: str | Path, *, mnist_dir: str | Path | None = None, overwrite: bool = False,
    block_size: int = BLOCK_SIZE, progress: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Generate ``spec`` into the HDF5 file ``out``; returns the split hashes."""
    out = Path(out)
    check_output(out, overwrite)
    sources = split_sources(spec, mnist_dir)
    return write_file(out, file_attributes(spec), sources, overwrite=overwrite,
                      block_size=block_size, progress=progress)
