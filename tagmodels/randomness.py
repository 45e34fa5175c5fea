"""Where the models' training noise comes from: torch's global stream, or each run's own.

The corruption x~, the initial m^0 and the FC Ladder's layer noise are drawn here rather than
with ``torch.rand_like``, so that training can give every run a generator of its own
(:func:`streams`). A population of P runs trained as one batched computation
(:mod:`tagmodels.training.step`) then draws, at each site, one tensor per member from
that member's generator and hands each member its own: every member sees exactly the noise it
would see trained alone. Outside :func:`streams` (evaluation under a fixed seed, the API) the
draws come from torch's global generator, as ``torch.rand_like`` would.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch

Draw = Callable[..., torch.Tensor]  # torch.rand or torch.randn


class _Streams:
    """The active generators (one per member) and, inside a batched call, the member index."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)
        self.member: torch.Tensor | None = None

    def draw(self, draw: Draw, like: torch.Tensor) -> torch.Tensor:
        options = {"dtype": like.dtype, "device": like.device}
        if self.member is None:
            (generator,) = self.generators  # a single run: its own stream, no stacking
            return draw(like.shape, generator=generator, **options)
        # One draw per member in member order, each member picking its own by its index
        # (batched under torch.func.vmap): its stream advances as if it trained alone.
        stacked = torch.stack([draw(like.shape, generator=generator, **options) for generator in self.generators])
        return stacked[self.member]


_active: list[_Streams] = []


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A run's noise generator on ``device``, seeded (the host's for the meta device, which
    has none: draws for meta tensors only need their shape)."""
    return torch.Generator("cpu" if device.type == "meta" else device).manual_seed(seed)


def uniform_like(like: torch.Tensor) -> torch.Tensor:
    """U[0, 1) samples of ``like``'s shape, dtype and device."""
    return _active[-1].draw(torch.rand, like) if _active else torch.rand_like(like)


def normal_like(like: torch.Tensor) -> torch.Tensor:
    """N(0, 1) samples of ``like``'s shape, dtype and device."""
    return _active[-1].draw(torch.randn, like) if _active else torch.randn_like(like)


@contextmanager
def streams(generators: Sequence[torch.Generator]) -> Iterator[None]:
    """Draw from ``generators`` (one per population member, in member order) in this block."""
    _active.append(_Streams(generators))
    try:
        yield
    finally:
        _active.pop()


@contextmanager
def member(index: torch.Tensor) -> Iterator[None]:
    """Inside a call batched over members: ``index`` (the member's, batched) picks its draws."""
    active = _active[-1]
    active.member = index
    try:
        yield
    finally:
        active.member = None
