"""The precision names, importable without torch (the CLI lists them in --help)."""

from typing import Literal

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
