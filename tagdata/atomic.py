"""Writing a file so that readers never see half of it, and failures say why in one line.

Everything the toolkit writes (datasets, checkpoints, metrics, result JSON, pictures) goes
to a temporary name in the target directory and is renamed into place only when complete;
on any error, or an interrupt, the temporary file is removed and the target is left as it
was. A failed write (read-only directory, full disk) becomes a :class:`UserError` naming
the path and the cause, whichever library did the writing (h5py and torch report C-level
write failures as text holding ``errno = N``).

A process killed outright (SIGKILL, a power cut) cannot remove its temporary. Each writer
holds an exclusive ``flock`` on its temporary for as long as it writes, and the kernel
drops that lock when the process dies, so :func:`remove_stale_temporaries` can tell the
debris of a dead writer (lockable) from the file of a live one (locked) and remove only
the former.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from tagdata.errors import UserError

_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)")


def temporary_pattern(path: Path) -> str:
    """The glob matching the temporaries of ``path`` (``.NAME.RANDOM.tmp`` beside it)."""
    return f".{path.name}.*.tmp"


def check_writable(path: str | Path) -> Path:
    """Refuse an output path before any work is done: its directory must exist, and the
    path must name neither a directory nor a symbolic link that loops (which ``exists()``
    reports as absent, so that it would be replaced without a word)."""
    path = Path(path)
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UserError(
                f"output path {path} is a symbolic link that loops; remove it or give another name"
            ) from None
    if not path.parent.is_dir():
        raise UserError(f"output directory {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"output path {path} is a directory")
    return path


def storage_failure(err: BaseException) -> str | None:
    """The cause of a failed write or read (``No space left on device``), or None when
    ``err`` is not a storage failure but a bug to report as it is.

    The exception's chain is searched too: torch.save, say, raises the OSError of the
    failed write and then, while closing its archive, a RuntimeError naming no cause.
    """
    chain: BaseException | None = err
    while chain is not None:
        found = _ERRNO_IN_TEXT.search(str(chain))
        if found and isinstance(chain, (OSError, RuntimeError)):
            return os.strerror(int(found.group(1)))
        if isinstance(chain, OSError):
            return chain.strerror or str(chain).splitlines()[0]
        chain = chain.__cause__ or chain.__context__
    return None


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A fresh temporary beside ``path``, open and locked for as long as this process writes."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd, Path(name)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a fresh temporary file beside ``path``, then rename it to ``path``.

    ``write`` must not lock the temporary itself (h5py: ``locking=False``).
    """
    path = check_writable(path)
    try:
        fd, temporary = _create_temporary(path)
    except OSError as err:
        raise UserError(f"cannot write {path}: {storage_failure(err)}") from None
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(temporary, path)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        cause = storage_failure(err)
        if cause is None:
            raise
        raise UserError(f"cannot write {path}: {cause}") from None
    finally:
        os.close(fd)


@contextmanager
def new_directory(path: str | Path, ignore: tuple[str, ...] = ()) -> Iterator[None]:
    """For a command that makes the directory ``path`` as it goes: if the block fails before
    any file but those named in ``ignore`` is written there, the directory is removed again,
    so that a refused command leaves no folder behind. An existing directory is left alone."""
    path = Path(path)
    existed = path.exists()
    try:
        yield
    except BaseException:
        if not existed and path.is_dir() and all(p.is_dir() or p.name in ignore for p in path.rglob("*")):
            shutil.rmtree(path)
        raise


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporaries of ``path`` whose writer is dead; returns what was removed.

    A temporary still locked belongs to a live writer (another process writing the same
    name) and is left alone.
    """
    path = Path(path)
    removed = []
    for candidate in sorted(path.parent.glob(temporary_pattern(path))):
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except OSError:  # gone meanwhile, or not ours to read
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        else:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so set it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
