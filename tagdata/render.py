"""Small drawing helpers: colour label maps and soft group masks, tile images, save PNGs.

Kept free of dataset knowledge so that model code can draw its group assignments with the
same colours as the ground truth: layer/group k always gets ``palette(k + 1)[k]``.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image

from tagdata.atomic import atomic_write

UNSCORED_RGB = (128, 128, 128)  # grey for pixels that carry no label
# Layer 0 (background) black, then well-separated hues; more are generated on demand.
_BASE = np.array([
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25),
    (145, 30, 180), (70, 240, 240), (245, 130, 48), (240, 50, 230), (250, 190, 190),
], dtype=np.uint8)


def palette(n: int) -> np.ndarray:
    """uint8 (n, 3): a fixed colour per label; the first ten are hand-picked, the rest are
    spread over hues by the golden ratio."""
    extra = [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.95)
             for i in range(max(0, n - len(_BASE)))]
    extra_rgb = np.round(np.array(extra, dtype=float).reshape(-1, 3) * 255).astype(np.uint8)
    return np.concatenate([_BASE, extra_rgb])[:n]


def colour_labels(labels: np.ndarray, unscored: int = 255) -> np.ndarray:
    """uint8 (..., 3) image of an integer label map; ``unscored`` pixels are grey."""
    labels = np.asarray(labels)
    scored = labels != unscored
    colours = palette(int(labels[scored].max()) + 1 if scored.any() else 1)
    out = np.empty(labels.shape + (3,), dtype=np.uint8)
    out[scored] = colours[labels[scored]]
    out[~scored] = UNSCORED_RGB
    return out


def colour_soft(weights: np.ndarray, colours: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W, 3) blend of ``colours`` (K, 3; default the palette's first K) weighted by
    soft assignments (K, H, W), e.g. a model's group masks or the ground-truth masks."""
    weights = np.asarray(weights, dtype=np.float64)
    colours = palette(len(weights)) if colours is None else colours
    mixed = np.tensordot(weights, np.asarray(colours, dtype=np.float64), axes=(0, 0))
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def dim_outside(image: np.ndarray, keep: np.ndarray, strength: float = 0.8,
                towards: tuple[int, int, int] = (200, 200, 200)) -> np.ndarray:
    """uint8 (H, W, 3) ``image`` with the pixels outside ``keep`` (H, W bool) faded towards a
    light grey, so that the eye goes to the kept ones while the rest stays faintly legible."""
    faded = (1 - strength) * image.astype(np.float64) + strength * np.asarray(towards, dtype=np.float64)
    return np.where(np.asarray(keep)[:, :, None], image, np.round(faded).astype(np.uint8))


def tint(intensity: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): an intensity image in [0, 1] (H, W) drawn in ``colour`` on black."""
    shade = np.clip(np.asarray(intensity, dtype=np.float64), 0, 1)[:, :, None]
    return np.round(shade * np.asarray(colour, dtype=np.float64)).astype(np.uint8)


def grey_to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) from an intensity image in [0, 1], shaped (H, W) or (1, H, W)."""
    image = np.asarray(image, dtype=np.float64).reshape(np.shape(image)[-2:])
    grey = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (keeps pixels crisp)."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def tile(cells: list[np.ndarray] | np.ndarray, columns: int, pad: int = 2,
         background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """uint8 grid of equally sized (h, w, 3) cells, row by row, ``pad`` pixels apart."""
    cells = [np.asarray(c, dtype=np.uint8) for c in cells]
    if not cells:
        raise ValueError("nothing to tile")
    h, w = cells[0].shape[:2]
    columns = max(1, min(columns, len(cells)))
    rows = -(-len(cells) // columns)
    grid = np.empty((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), dtype=np.uint8)
    grid[:] = background
    for i, cell in enumerate(cells):
        top, left = pad + (i // columns) * (h + pad), pad + (i % columns) * (w + pad)
        grid[top:top + h, left:left + w] = cell
    return grid


def side_by_side(*images: np.ndarray, gap: int = 1, colour: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Equal-height (h, w, 3) images joined left to right with a ``gap``-pixel separator."""
    h = images[0].shape[0]
    spacer = np.empty((h, gap, 3), dtype=np.uint8)
    spacer[:] = colour
    parts = [part for image in images for part in (spacer, image)][1:]
    return np.concatenate(parts, axis=1)


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write a uint8 (H, W, 3) array as PNG, atomically."""
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    atomic_write(path, lambda temporary: picture.save(temporary, format="PNG"))
