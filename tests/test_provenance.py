"""Result files name no machine's directory layout: paths and commands are made relative."""

from __future__ import annotations

import os

from tagdata.provenance import portable_command, portable_path


def test_paths_and_commands_are_recorded_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert portable_path(tmp_path / "runs" / "a") == os.path.join("runs", "a")
    assert portable_path("/") == os.path.relpath("/", tmp_path)
    command = portable_command(["tagtool", "train", "--data", str(tmp_path / "d.h5"), f"--out={tmp_path}/r", "--lr", "1"])
    assert command == "tagtool train --data d.h5 --out=r --lr 1"
    assert "/" not in command.replace("--out=r", "")
