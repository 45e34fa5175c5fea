"""The model zoo: every model by name, a plain registry.

``create("tagger" | "fc-mlp" | "fc-ladder" | "convnet", ...)`` builds a fresh model; the CLI,
the training code and the Table 2 benchmark build theirs through it, so a name means the same
thing everywhere. It knows nothing of runs or of the benchmark: those sit above it and use it
(trained runs are loaded back by :mod:`tagmodels.loading`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from tagdata.errors import InvalidArgument
from tagmodels.baselines.classifiers import FCMLP, ModelC
from tagmodels.baselines.fc_ladder import FCLadder
from tagmodels.tagger.model import Tagger, TaggerConfig


def _tagger(**config: Any) -> Tagger:
    """Tagger from TaggerConfig fields (``n_inputs`` required)."""
    if "widths" in config:
        config["widths"] = tuple(config["widths"])
    return Tagger(TaggerConfig(**config))


@dataclass(frozen=True)
class ModelEntry:
    """One model of the zoo: its name, where the paper describes it, and how to build it."""

    name: str
    summary: str
    build: Callable[..., nn.Module]


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry("tagger", "Tagger: TAG with a Ladder network (Section 2); kwargs: TaggerConfig fields", _tagger),
        ModelEntry("fc-mlp", "FC MLP baseline (Section 3.3); kwargs: n_inputs, widths", FCMLP),
        ModelEntry(
            "fc-ladder",
            "FC Ladder baseline (Section 3.3, Rasmus et al. 2015); kwargs: n_inputs, widths, noise_std, denoising_weights",
            FCLadder,
        ),
        ModelEntry("convnet", "Model-C ConvNet baseline (Section 3.3); kwargs: image_size, channels", ModelC),
    )
}


SIZES = ("n_inputs", "widths", "image_size", "channels")  # arguments that count units or pixels


def _check_sizes(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse a size below 1 (``n_inputs=0``) by name, before a layer divides by it."""
    for key in SIZES:
        if key not in kwargs:
            continue
        value = kwargs[key]
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items or not all(isinstance(item, int) and not isinstance(item, bool) and item >= 1 for item in items):
            raise InvalidArgument(f"create({name!r}): {key} must be whole numbers of at least 1, got {value!r}")


def create(name: str, **kwargs: Any) -> nn.Module:
    """A fresh model of the zoo by name, e.g. ``create("tagger", n_inputs=400, norm="layer")``;
    an unknown name or a size below 1 raises :class:`tagdata.errors.InvalidArgument` (a ValueError)."""
    try:
        entry = MODELS[name]
    except KeyError:
        raise InvalidArgument(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    _check_sizes(name, kwargs)
    return entry.build(**kwargs)
