"""Tagger (paper, Section 2): the TAG equations, the Ladder, the model, its presets and views.

- ``tag``: corruption, delta z, L(m) and the cost -log q(x) (equations 1-5; Appendix A.4-A.5)
- ``tag_names``: the TAG options' names and defaults, without torch (presets, the CLI)
- ``ladder``: the Ladder network with its Gaussian combinator (Section 2.2, Appendix A.6)
- ``model``: :class:`Tagger` and :class:`TaggerConfig`, the parametric mapping (Fig. 3)
- ``classifier``: the per-group classification head of Section 3.3
- ``presets``: the paper's hyper-parameters (Section 3) and CPU-sized ones
- ``evaluation``: AMI and denoising cost per iteration (Table 1a)
- ``visualize``: m and z per group and iteration (Fig. 4)
"""
