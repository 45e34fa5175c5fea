"""Procedural datasets for perceptual grouping: Shapes and TextureMNIST1/2."""

from tagdata.errors import UserError
from tagdata.version import __version__

__all__ = ["UserError", "__version__"]
