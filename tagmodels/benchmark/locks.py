"""Advisory file locks that let several processes share one benchmark directory.

A lock is an exclusive ``flock`` on a small file under ``DIR/state/``. The kernel drops it
when its process ends, however it ends (a finished cell, an exception, SIGKILL, a preempted
Slurm job), so a lock never outlives its holder and nothing has to be cleaned up before a
grid is run again. The holder writes a line of JSON into its lock file saying where it runs;
:func:`holder` reads it back while the lock is held (``tagtool status``).

Taking a lock without waiting (:func:`claim`) and looking whether one is held (:func:`held`,
which must take it for a moment to find out) both happen under one short directory-wide
guard lock, so that looking never makes a claim fail.

``flock`` works across the processes of one machine and, on Linux clients, across the nodes
of a cluster on NFS (v4, or v3 with lock support) and Lustre mounted with ``flock``.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

GUARD = "guard.lock"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the lock for the block, waiting for its holder to finish first."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor drops the lock


@contextmanager
def claim(path: Path, where: dict[str, Any]) -> Iterator[bool]:
    """Try to take the lock without waiting; yields whether it was taken. The holder's
    ``where`` (host, pid, device, executor, job id) is written into the lock file."""
    fd = _open(path)
    try:
        if not _try_lock(fd, path, keep=True):
            yield False
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(where) + "\n").encode(), 0)
        yield True
    finally:
        os.close(fd)


def held(path: Path) -> bool:
    """Whether a live process holds the lock at ``path`` now."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return not _try_lock(fd, path, keep=False)
    finally:
        os.close(fd)


def _try_lock(fd: int, path: Path, keep: bool) -> bool:
    """Whether the lock on ``fd`` could be taken without waiting (under the directory's guard
    lock); it is kept when ``keep``, else dropped before the guard is."""
    with exclusive(path.parent / GUARD):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not keep:
            fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def holder(path: Path) -> dict[str, Any]:
    """What the holder of the lock at ``path`` wrote about itself ({} when unreadable)."""
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}
