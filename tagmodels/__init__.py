"""Tagger (TAG + Ladder), the Table 2 baselines, and the grouping metrics.

The public API, what a notebook needs (see docs/api.md):

- models: :class:`Tagger` and :class:`TaggerConfig`, the baselines :class:`FCMLP`,
  :class:`FCLadder` and :class:`ModelC` (the ConvNet), and the zoo: :data:`MODELS` and
  :func:`create` (``"tagger"``, ``"fc-mlp"``, ``"fc-ladder"``, ``"convnet"``);
- trained runs: :func:`load_run` gives a run's model (eval mode), config and history;
- grouping per iteration: :func:`evaluate_grouping` (the layout of Table 1a);
- metrics: :mod:`tagmodels.metrics` (``ami``, ``ari``, ``grouping_scores``, ``top1_error``,
  ``top2_error``), plain arrays in, arrays out;
- :data:`PRESETS` (the paper's hyper-parameters and CPU-sized ones) and :mod:`tagmodels.paper`
  (the paper's own figures).
"""

from tagmodels import metrics, paper
from tagmodels.baselines.classifiers import FCMLP, ModelC
from tagmodels.baselines.fc_ladder import FCLadder
from tagmodels.tagger.classifier import TaggerClassifier
from tagmodels.tagger.evaluation import evaluate_grouping
from tagmodels.tagger.model import Tagger, TaggerConfig, TaggerOutput
from tagmodels.tagger.presets import PRESETS, Preset
from tagmodels.zoo import MODELS, Run, create, load_run

__all__ = [
    "FCLadder",
    "FCMLP",
    "MODELS",
    "ModelC",
    "PRESETS",
    "Preset",
    "Run",
    "Tagger",
    "TaggerClassifier",
    "TaggerConfig",
    "TaggerOutput",
    "create",
    "evaluate_grouping",
    "load_run",
    "metrics",
    "paper",
]
