"""One exception type for mistakes in what the user gave us.

Library code raises :class:`UserError` with a message that names the problem; the
``tagtool`` command turns it into a single ``Error: ...`` line and a non-zero exit,
never a traceback.
"""


class UserError(Exception):
    """Bad input from the user: a missing or corrupt file, a wrong option or shape."""


class InvalidArgument(UserError, ValueError):
    """An argument out of its range given to the Python API (``create("tagger", n_inputs=0)``):
    a ValueError to API callers, one ``Error:`` line to ``tagtool``."""
