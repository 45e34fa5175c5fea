"""The CUDA path without a GPU at hand: the device checker of every training step
(:mod:`tagmodels.gpu.steps`) and the one prepared check of a GPU machine (``tagtool gpu-check``)."""
