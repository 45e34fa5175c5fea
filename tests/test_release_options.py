"""The 2016 release's remaining details as named options (issue 17, part 1): each reaches the
model (a property only its code has, computed by hand where possible) and --resume holds it."""

from __future__ import annotations

from tagtool_cli.model_commands import RESUME_OPTIONS, train

from tagmodels.training.resume import held_settings


def test_every_held_setting_is_a_train_option_that_resume_compares():
    parameters = {param.name for param in train.params}
    config = {"data": "d.h5", "preset": "p", "training": {}}
    assert set(held_settings(config)) <= set(RESUME_OPTIONS)
    assert set(RESUME_OPTIONS.values()) <= parameters
