"""Still images read the way the official MiDaS reader does.

OpenCV decodes to 3-channel BGR whatever the file holds (gray is expanded,
alpha dropped), which is exactly what MiDaS' ``read_image`` feeds the network.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from capture.errors import SourceError


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
    """``(width, height)`` from a PNG or JPEG header, without decoding the pixels.

    Lets a server refuse a decompression bomb before allocating it; None for
    other formats or a header too damaged to read.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        # Start-of-frame markers (baseline, progressive, ...) carry height then width.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(
                data[i + 5 : i + 7], "big"
            )
        i += 2 + length
    return None
