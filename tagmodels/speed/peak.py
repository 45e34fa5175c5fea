"""The device's own dense matmul rate: the ceiling of any training step's GEMMs.

Measured on the device itself with square products in the step's dtype, large enough to
keep every unit busy (8192 on CUDA; 512 on a CPU, where a larger one would only take longer).
The datasheet figure beside it is a check of the measurement, keyed by the CUDA device name.
"""

from __future__ import annotations

import torch

from tagmodels.timing import seconds_per_call

# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from NVIDIA's datasheets, most
# specific name first: "H100 PCIe" before "H100", "L40S" before "L4".
DATASHEET_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
SQUARE = {"cuda": 8192, "cpu": 512}


def datasheet_tflops(device: torch.device, dtype: torch.dtype) -> float | None:
    """The datasheet's dense bf16 peak of a known CUDA device, else None."""
    if device.type != "cuda" or dtype != torch.bfloat16:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in DATASHEET_BF16_TFLOPS if key in name), None)


def measured_matmul_tflops(device: torch.device, dtype: torch.dtype, min_seconds: float = 0.5) -> float:
    """TFLOP/s of a square matmul in ``dtype`` on ``device``."""
    size = SQUARE.get(device.type, 512)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    return 2 * size**3 / seconds_per_call(lambda: a @ b, device, min_seconds) / 1e12
