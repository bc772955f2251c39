"""Text drawn over the view: live figures, obstacle sectors, the untrained-weights stamp, and a
banner while the camera reconnects."""

from __future__ import annotations

import cv2
import numpy as np

from depthstream.stream.obstacles import ObstacleReading

FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_text(
    image: np.ndarray,
    text: str,
    origin: tuple[int, int],
    scale: float,
    colour: tuple[int, int, int],
) -> None:
    """Outlined text (dark border), readable on any colour map."""
    thickness = max(round(scale * 1.5), 1)
    cv2.putText(image, text, origin, FONT, scale, (0, 0, 0), thickness + 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, FONT, scale, colour, thickness, cv2.LINE_AA)


def draw_figures(image: np.ndarray, fps: float, inference_ms: float, age_ms: float) -> None:
    """fps, inference time and frame age in the bottom-left corner, in place."""
    scale = max(image.shape[1] / 1280.0, 0.4)
    text = f"{fps:4.1f} fps  infer {inference_ms:4.0f} ms  age {age_ms:4.0f} ms"
    draw_text(image, text, (8, image.shape[0] - int(12 * scale) - 4), scale, (255, 255, 255))


def draw_stamp(image: np.ndarray, text: str) -> None:
    """Write ``text`` in red across the top-left, in place."""
    scale = max(image.shape[1] / 640.0, 0.5)
    draw_text(image, text, (int(10 * scale) + 2, int(34 * scale) + 4), scale, (0, 0, 255))


def draw_banner(image: np.ndarray, text: str) -> None:
    """A large centred message (e.g. RECONNECTING), in place."""
    scale = max(image.shape[1] / 640.0, 0.6)
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 2)
    origin = ((image.shape[1] - w) // 2, (image.shape[0] + h) // 2)
    draw_text(image, text, origin, scale, (0, 200, 255))


def draw_sectors(image: np.ndarray, reading: ObstacleReading, right_half: bool = False) -> None:
    """Sector borders and each sector's nearest distance along the top, red when too near."""
    h, w = image.shape[:2]
    x_off, width = (w // 2, w - w // 2) if right_half else (0, w)
    scale = max(width / 1280.0, 0.4)
    for sector in reading.sectors:
        x0, x1 = x_off + int(sector.x0 * width), x_off + int(sector.x1 * width)
        colour = (0, 0, 255) if sector.warning else (255, 255, 255)
        if sector.index:
            cv2.line(image, (x0, 0), (x0, h), (200, 200, 200), 1)
        metric = sector.metres is not None and np.isfinite(sector.metres)
        label = f"{sector.metres:.2f} m" if metric else f"{sector.nearness * 100:.0f}%"
        draw_text(image, label, (x0 + 6, int(h * 0.18) + int(24 * scale)), scale, colour)
        if sector.warning:
            cv2.rectangle(image, (x0 + 2, h - 8), (x1 - 2, h - 2), (0, 0, 255), -1)
