"""The Table 2 benchmark: classification on TextureMNIST1/2 (paper, Section 3.3).

- ``settings``: per method, dataset, label budget and scale, the hyper-parameters
- ``label_budget``: the 1,000-label draws of the semi-supervised columns
- ``permutation``: the permuted-pixel columns
- ``grid``: the cells, each skipped when done, resumed when half-done
- ``plan``: DIR/plan.json, the planned cells by index, for any process to find
- ``locks``: file locks, so that several processes share one directory
- ``executors``: who runs the cells (this process, a local pool); ``slurm``: a Slurm job array
- ``usage``: peak memory, samples/s and the executor and job a result records
- ``status``: where a grid stands (``tagtool status``)
- ``table``: table.md beside the paper's figures
"""
