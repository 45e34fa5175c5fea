"""The paper's experiments, above the model and training code (imports flow one way: the
experiments use ``tagmodels.tagger``, ``tagmodels.training`` and ``tagmodels.benchmark``,
never the reverse).

- ``table1``: Tables 1a/1b over seeds, beside the paper's figures (Section 3.2)
- ``generalization``: a trained Tagger on other numbers of objects and groups K (Fig. 4 A-C)
- ``ablation``: full TAG against delta z / L(m) zeroed, the learning check
- ``reproduce``: ``tagtool reproduce``, both tables in one budgeted, resumable command; its
  ``reproduce_plan`` (units of seeds, order, budget), ``speed_probe`` (samples/s per model
  kind) and ``reproduce_report`` (report.md)
"""
