"""The ``train`` settings --resume holds, importable without torch (the CLI's option check uses them)."""

# Fields of config.json's "training" table that a resumed run keeps; with "data" and "preset"
# they are what ``train --resume`` refuses to change (tagmodels.training.resume.held_settings).
# Each is also a ``train`` option of the same name (dashes for underscores).
HELD_TRAINING_SETTINGS: tuple[str, ...] = (
    "seed", "groups", "iterations", "widths", "norm", "lr", "batch_size", "precision", "compile",
    "initial_variance", "delta_z_form", "z_input",
    "variance_map", "likelihood_variance", "m_floor", "norm_epsilon", "tag_norm",
    "z_norm", "m0_scale", "m0_smoothing", "z_rank", "initial_m",
)
