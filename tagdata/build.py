"""From a spec to a file: pick the generator, load its inputs, hand the splits to the writer.

Everything that can fail because of user input (the output path, MNIST files, their sizes,
a dataset with no example, one too large for this machine's memory) is checked before the
output file is created. The file records what it was made from: its spec, and for
TextureMNIST the SHA-256 of every MNIST file read (``mnist.<file>.sha256``) and whether all
of them are the standard MNIST files (``mnist_standard``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from tagdata import idx, shapes, texture_mnist
from tagdata.atomic import remove_stale_temporaries
from tagdata.errors import UserError
from tagdata.layout import FORMAT, FORMAT_VERSION, SplitSource
from tagdata.limits import fit_block_size
from tagdata.specs import ShapesSpec, Spec, TextureMnistSpec, spec_to_toml
from tagdata.version import __version__
from tagdata.writer import check_output, write_file

BLOCK_SIZE = 2048  # examples rendered at a time; bounds memory, does not change the data


def _texture_sources(
    spec: TextureMnistSpec, mnist_dir: str | Path | None
) -> tuple[list[SplitSource], list[idx.MnistPart]]:
    active = [split for split in spec.split_names if spec.splits[split] > 0]
    if not active:
        return [], []
    directory = idx.mnist_dir(mnist_dir)
    mnist = {name: idx.read_mnist(directory, name)
             for name in sorted({spec.sources[split].file for split in active})}
    bank = texture_mnist.spec_bank(spec)
    sources = []
    for split in active:
        source = spec.sources[split]
        images, labels = mnist[source.file].images, mnist[source.file].labels
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
    return sources, list(mnist.values())


def _inputs(spec: Spec, mnist_dir: str | Path | None) -> tuple[list[SplitSource], list[idx.MnistPart]]:
    """The non-empty splits of a spec, and the MNIST parts they were made from."""
    if isinstance(spec, ShapesSpec):
        return [shapes.split_source(spec, split) for split in spec.split_names if spec.splits[split] > 0], []
    return _texture_sources(spec, mnist_dir)


def split_sources(spec: Spec, mnist_dir: str | Path | None = None) -> list[SplitSource]:
    """The non-empty splits of a spec, ready to be rendered block by block."""
    return _inputs(spec, mnist_dir)[0]


def file_attributes(spec: Spec, mnist: Sequence[idx.MnistPart] = ()) -> dict[str, object]:
    """The root attributes every tagdata file carries (the writer adds splits and hashes)."""
    attrs: dict[str, object] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": spec.name, "kind": spec.kind,
        "seed": spec.seed, "spec": spec_to_toml(spec), "tagdata_version": __version__,
    }
    for part in mnist:
        attrs.update({f"mnist.{stem}.sha256": digest for stem, digest in part.sha256.items()})
    if mnist:
        attrs["mnist_standard"] = all(part.standard for part in mnist)
    return attrs


def make_dataset(
    spec: Spec, out: str | Path, *, mnist_dir: str | Path | None = None, overwrite: bool = False,
    block_size: int = BLOCK_SIZE, progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Generate ``spec`` into the HDF5 file ``out``; returns the split hashes.

    ``log`` receives notes for the user: temporaries of killed earlier runs that were
    removed, and MNIST files that are not the standard ones.
    """
    out = Path(out)
    check_output(out, overwrite)
    if sum(spec.splits.values()) == 0:
        raise UserError(f"{spec.name}: every split has 0 examples; there is nothing to write")
    block_size = fit_block_size(spec, block_size)
    sources, mnist = _inputs(spec, mnist_dir)
    notes = [f"removed {stale.name}, left by an earlier run that was killed" for stale in remove_stale_temporaries(out)]
    notes += [note for part in mnist for note in part.notes]
    for note in notes if log is not None else []:
        log(note)
    return write_file(out, file_attributes(spec, mnist), sources, overwrite=overwrite,
                      block_size=block_size, progress=progress)
