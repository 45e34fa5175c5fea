"""The sinusoidal texture bank of TextureMNIST (the paper, Section 3, "Textured MNIST").

Texture t is the real part of the 2-D inverse FFT of a canvas x canvas array that is zero
except at its frequency pair (u, v), where it is exp(2 pi i phi_t). That real part has the
closed form cos(2 pi (phi_t + (u r + v c) / canvas)) / canvas^2; it is evaluated directly
(with the integer phase index reduced modulo the canvas first) and then normalised to
[0, 1] by subtracting its minimum and dividing by its maximum, in float64, before rounding
to float32. Rounding at the end keeps the bank bit-identical across machines whose cosine
implementations differ in the last float64 bit.
"""

from __future__ import annotations

import numpy as np


def texture_bank(frequencies: tuple[tuple[int, int], ...], canvas: int, phases: np.ndarray) -> np.ndarray:
    """float32 (textures, canvas, canvas), each normalised to [0, 1]."""
    index = np.arange(canvas)
    bank = np.empty((len(frequencies), canvas, canvas), dtype=np.float32)
    for t, ((u, v), phi) in enumerate(zip(frequencies, phases)):
        k = (u * index[:, None] + v * index[None, :]) % canvas
        wave = np.cos(2.0 * np.pi * (float(phi) + k / canvas))
        wave -= wave.min()
        bank[t] = wave / wave.max()
    return bank


def crop_layers(bank: np.ndarray, textures: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
    """float32 (B, L, size, size): texture ``textures[b, l]`` cropped at ``offsets[b, l]``
    (top row, left column)."""
    windows = np.lib.stride_tricks.sliding_window_view(bank, (size, size), axis=(1, 2))
    return windows[textures, offsets[:, :, 0], offsets[:, :, 1]]
