"""The ``portability`` command: one module per command group, registered on a small root.

``main`` is the console script; ``run(argv)`` returns the exit code instead of exiting (tests
call it). Exit codes and error lines are decided in ``portability.cli._errors`` alone;
``--debug`` adds the traceback.
"""

from __future__ import annotations

from portability.cli._root import main, run

__all__ = ["main", "run"]
