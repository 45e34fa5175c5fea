"""Writing a file so that readers never see half of it.

Everything the toolkit writes (datasets, checkpoints, metrics, result JSON, pictures) goes
to a temporary name in the target directory and is renamed into place only when complete;
on any error the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from tagdata.errors import UserError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a fresh temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"output directory {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"output path {path} is a directory")
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {err}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so set it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
