"""One writer per directory: a lock file held with ``flock`` while a process writes there.

Two processes writing the same run directory (a second ``train --overwrite``, a ``--resume``
beside a running ``train``) would leave a config of one run beside the checkpoint of the
other. The first process to write claims the directory's lock file; a second is refused
with one line naming the holder's pid. The kernel drops an ``flock`` when its process dies,
so the lock of a killed process (SIGKILL, a power cut) never blocks the next writer: the
file it left is simply locked again.

A process keeps what it claimed until :func:`release` (the ``tagtool`` command group
releases everything when a command ends); claiming a directory it already holds is a no-op,
so the steps of one command (create the run, train it) need not pass the lock around.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from tagdata.errors import UserError

LOCK = ".lock"
_held: dict[Path, int] = {}  # directory (resolved) -> open, locked descriptor of its lock file


def _key(directory: Path) -> Path:
    return Path(directory).resolve()


def _holder(lock: Path) -> str:
    """The pid a lock file names, for the refusal (empty while the holder is still writing it)."""
    try:
        pid = lock.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def claim(directory: Path | str, what: str = "directory") -> None:
    """Hold ``directory``'s lock for this process, or refuse when another process holds it."""
    key = _key(Path(directory))
    if key in _held:
        return
    lock = key / LOCK
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise UserError(
                f"{directory} is being written by another process{_holder(lock)}: wait for it to end, "
                f"or give another {what}"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the holder removed the file as we opened it: lock the new one
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = fd


def release(directory: Path | str) -> None:
    """Give up ``directory``'s lock (if this process holds it) and remove its lock file."""
    fd = _held.pop(_key(Path(directory)), None)
    if fd is None:
        return
    (_key(Path(directory)) / LOCK).unlink(missing_ok=True)  # while still locked: no one else has it
    os.close(fd)


def release_all() -> None:
    """Give up every lock this process holds."""
    for directory in list(_held):
        release(directory)
