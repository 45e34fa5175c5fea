"""The Table 2 benchmark: classification on TextureMNIST1/2 (paper, Section 3.3).

- ``settings``: per method, dataset, label budget and scale, the hyper-parameters
- ``label_budget``: the 1,000-label draws of the semi-supervised columns
- ``permutation``: the permuted-pixel columns
- ``grid``: the cells, run one at a time, skipped when done, resumed when half-done
- ``table``: table.md beside the paper's figures
"""
