"""The export engine: deliver what changed since the checkpoint, effectively once."""

from portability.export._hooks import ExportHooks
from portability.export.engine import RunOutcome, execute_run

__all__ = ["ExportHooks", "RunOutcome", "execute_run"]
