"""Where the command line writes: results to stdout, logs to stderr.

Owns :func:`result`, the one writer of a command's results (what a script pipes or a user
reads: counts written, AUROCs, the version list, the audit trail's head), so that
``riskfusion versions > versions.txt`` holds the list and not the log. Progress, warnings and
errors stay on the ``riskfusion`` logger (stderr, through ``logging.basicConfig``). A result line
carries no patient id unless the user asked for that patient. Must not import streamlit.
"""

from __future__ import annotations

import sys

__all__ = ["result"]


def result(text: str, *args: object) -> None:
    """Write one result line to stdout (``%``-style arguments, like a log call).

    Examples
    --------
    >>> result("wrote %d predictions", 3)
    wrote 3 predictions
    """
    sys.stdout.write((text % args if args else text) + "\n")
    sys.stdout.flush()
