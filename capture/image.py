"""Still images read the way the official MiDaS reader does.

OpenCV decodes to 3-channel BGR whatever the file holds (gray is expanded,
alpha dropped), which is exactly what MiDaS' ``read_image`` feeds the network.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from depthstream.capture.errors import SourceError


def read_image(path: str | Path) -> np.ndarray:
    """Return HxWx3 uint8 RGB, or raise :class:`SourceError` saying why the file is unusable."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: is a directory, not an image") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data.tobytes(), str(path))


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode image bytes to HxWx3 uint8 RGB, or raise :class:`SourceError`."""
    if not data:
        raise SourceError(f"{name}: empty file")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SourceError(f"{name}: not a readable image (unknown format, damaged or truncated)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG or JPEG as the decoder that will decode it reads them,
    without allocating the full image; None for other formats or an unreadable header.

    PNG: the IHDR chunk, which libpng requires first.  JPEG: libjpeg itself, decoding at
    1/8 scale (only the DC coefficients, 1/64 of the pixels), since a header parser of
    our own may read markers differently from libjpeg; exact to 8 pixels a side, never
    under.  Lets a server refuse a decompression bomb before allocating it.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    eighth = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if eighth is None:
        return None
    return eighth.shape[1] * 8, eighth.shape[0] * 8
