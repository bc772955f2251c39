"""Text drawn over the view: live figures, and a banner while the camera reconnects."""

from __future__ import annotations

import cv2
import numpy as np

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


def draw_banner(image: np.ndarray, text: str) -> None:
    """A large centred message (e.g. RECONNECTING), in place."""
    scale = max(image.shape[1] / 640.0, 0.6)
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 2)
    origin = ((image.shape[1] - w) // 2, (image.shape[0] + h) // 2)
    draw_text(image, text, origin, scale, (0, 200, 255))
