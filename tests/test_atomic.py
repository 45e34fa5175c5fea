"""atomic_write: complete files or none, with the usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from tagdata.atomic import atomic_write
from tagdata.errors import UserError


def test_writes_with_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "out.txt", lambda tmp: tmp.write_text("done"))
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").read_text() == "done"
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        atomic_write(tmp_path / "no" / "out.txt", lambda tmp: tmp.write_text("x"))
