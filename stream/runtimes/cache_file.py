"""Build-once cache files, written beside their final name and renamed into place.

A crash or a full disk mid-write must never leave a half-written file that a
later run would trust.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("depthstream")


def write_atomically(path: Path, write: Callable[[Path], None]) -> bool:
    """Let ``write`` fill a temporary file, then rename it to ``path``.

    Returns False (and logs why) when the cache cannot be written: the caller
    still has what it built, only later starts lose the shortcut.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not write cache file %s: %s", path, exc)
        return False
    return True
