"""Still images read the way the official MiDaS reader does.

OpenCV decodes to 3-channel BGR whatever the file holds (gray is expanded,
alpha dropped), which is exactly what MiDaS' ``read_image`` feeds the network.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stream.errors import UserError


def read_image(path: str | Path) -> np.ndarray:
    """Return HxWx3 uint8 RGB, or raise :class:`UserError` saying why the file is unusable."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not an image") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise UserError(f"{path}: empty file")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"{path}: not a readable image (unknown format, damaged or truncated)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
