"""Training and runs, shared by every model (paper, Section 3.1: Adam, batch 100).

- ``loop``: the one training loop: checkpoints every epoch, exact resume
- ``runs``: a run directory (config.json, metrics.jsonl, checkpoint) and provenance
- ``data``: dataset splits as tensors on the training device
- ``grouping``: unsupervised Tagger runs (the denoising cost, validation AMI)
- ``classification``: classifier runs (Table 2) and their test error
"""
