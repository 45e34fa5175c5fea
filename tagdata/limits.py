"""Sizes checked before anything is allocated: a spec asking for 100,000 x 100,000 images
should be one line naming the field, not numpy failing to allocate 279 GiB.

Two checks: hard limits in the spec (no side beyond ``tagdata.specs.MAX_SIDE`` pixels), and the
memory generation needs (the per-split plan, the texture bank and MNIST, plus one block of
examples) against the memory available. Generation renders blocks of examples; when a
full block would not fit, the block is made smaller, which does not change the data.
"""

from __future__ import annotations

from pathlib import Path

from tagdata.errors import UserError
from tagdata.specs import ShapesSpec, Spec

MEMORY_SHARE = 0.5  # of the available memory, what generation may plan to use
BLOCK_COPIES = 4  # float32 arrays alive per layer and pixel while a block is rendered
MNIST_BYTES = 70_000 * (28 * 28 + 1)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _layers(spec: Spec) -> int:
    return spec.objects + 1 if isinstance(spec, ShapesSpec) else spec.digits + 1


def example_bytes(spec: Spec) -> int:
    """Memory one example takes while its block is rendered (arrays and temporaries)."""
    height, width = spec.image_size
    return height * width * (4 * BLOCK_COPIES * (_layers(spec) + 1) + 1)


def fixed_bytes(spec: Spec) -> int:
    """Memory held for a whole split: its plan of random draws, and the texture inputs."""
    examples = max(spec.splits.values())
    plan = examples * _layers(spec) * 8 * 4  # int64 arrays per layer
    if isinstance(spec, ShapesSpec):
        return plan
    draws = examples * len(spec.frequencies) * 16  # the texture draws and their argsort
    return plan + draws + len(spec.frequencies) * spec.canvas ** 2 * 4 + MNIST_BYTES


def fit_block_size(spec: Spec, block_size: int, available: int | None = None) -> int:
    """The block size to render with: ``block_size`` or fewer examples, so that generation
    stays within its share of the available memory; a UserError when not even one fits."""
    available = available_memory() if available is None else available
    if available is None:
        return block_size
    budget = int(available * MEMORY_SHARE) - fixed_bytes(spec)
    one = example_bytes(spec)
    if budget < one:
        need = (fixed_bytes(spec) + one) / MEMORY_SHARE
        raise UserError(
            f"{spec.name} (image_size {list(spec.image_size)}, largest split "
            f"{max(spec.splits.values())} examples) needs about {need / 2**30:.1f} GiB of memory to "
            f"generate; {available / 2**30:.1f} GiB are available"
        )
    return max(1, min(block_size, budget // one))
