"""Key files of the embedded default: created once, atomically, readable by their owner only.

A server deployment passes its keys in settings; only the single-host embedded set-up keeps
them in files under ``data_dir``. Every key file (encryption, pseudonyms, manifest signing) is
made the same way, here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["read_or_create_key_file"]


def read_or_create_key_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """Read the key file, creating it first if missing: ``make()`` written whole to a temporary
    file (mode 0600 from the start), then linked into place, so a reader never sees a partial
    key and two processes racing to create it end up with the same one (``os.link`` refuses to
    replace; ``os.replace`` would let the second overwrite a key the first already used)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(make())
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process created it meanwhile
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_bytes().strip()
