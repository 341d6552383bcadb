"""The ``portability`` command: one module per command group, registered on a small root.

Errors from the package's tree print as one line plus a hint and map to exit codes in
``portability.cli._errors``; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

from portability.cli._root import main

__all__ = ["main"]
