"""Progress bars on terminals that do not report their size.

A pseudo-terminal without a size (``script``, some CI runners and IDE consoles) reports 0
columns and 0 rows; tqdm then draws an empty bar, that is nothing at all. Such a terminal
gets a bar of the usual 80 columns instead.
"""

from __future__ import annotations

import os
import sys

FALLBACK = {"ncols": 80, "nrows": 24}


def bar_size() -> dict[str, int]:
    """tqdm keyword arguments: none where stderr's terminal reports its size, else 80x24."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # not a terminal: tqdm shows no bar anyway
        return {}
    return {} if size.columns and size.lines else dict(FALLBACK)
