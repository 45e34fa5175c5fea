"""The classification baselines of Table 2 (paper, Section 3.3).

- ``classifiers``: FC MLP and the Model-C ConvNet, and the mixture cross-entropy every
  classifier of the grid (Tagger's head included) is trained with
- ``fc_ladder``: the full Ladder network of Rasmus et al. (2015) with its denoising costs
"""
