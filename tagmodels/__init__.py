"""Tagger (TAG + Ladder), the Table 2 baselines, and the grouping metrics.

The public API, what a notebook needs (see docs/api.md):

- models: :class:`Tagger` and :class:`TaggerConfig`, the baselines :class:`FCMLP`,
  :class:`FCLadder` and :class:`ModelC` (the ConvNet), and the zoo: :data:`MODELS` and
  :func:`create` (``"tagger"``, ``"fc-mlp"``, ``"fc-ladder"``, ``"convnet"``);
- trained runs: :func:`load_run` gives a run's model (eval mode), config and history;
- grouping per iteration: :func:`evaluate_grouping` (the layout of Table 1a);
- metrics: :mod:`tagmodels.metrics` (``ami``, ``ari``, ``fg_ari``, ``msc``, ``grouping_scores``,
  ``top1_error``, ``top2_error``), plain arrays in, arrays out;
- :data:`PRESETS` (the paper's hyper-parameters and CPU-sized ones) and :mod:`tagmodels.paper`
  (the paper's own figures).

The names are imported on first use, so that importing a light submodule (the presets, the
benchmark settings) for ``tagtool --help`` does not pay for importing torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "FCLadder": "tagmodels.baselines.fc_ladder",
    "FCMLP": "tagmodels.baselines.classifiers",
    "MODELS": "tagmodels.zoo",
    "ModelC": "tagmodels.baselines.classifiers",
    "PRESETS": "tagmodels.tagger.presets",
    "Preset": "tagmodels.tagger.presets",
    "Run": "tagmodels.loading",
    "Tagger": "tagmodels.tagger.model",
    "TaggerClassifier": "tagmodels.tagger.classifier",
    "TaggerConfig": "tagmodels.tagger.model",
    "TaggerOutput": "tagmodels.tagger.model",
    "create": "tagmodels.zoo",
    "evaluate_grouping": "tagmodels.tagger.evaluation",
    "load_run": "tagmodels.loading",
}
_SUBMODULES = ("metrics", "paper")
__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return import_module(f"tagmodels.{name}")
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tagmodels' has no attribute {name!r}")
