"""The live OpenCV window, driven from the main thread (HighGUI wants that).

Keys: q/Esc quit, c next colour map, s snapshot (PNG of the view + raw float
depth as .npy), space pause the picture, f freeze the colour range.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from capture.status import RECONNECTING
from stream.colormap import COLORMAPS
from stream.errors import UserError
from stream.overlay import draw_banner
from stream.pipeline import Pipeline

log = logging.getLogger("depthstream")

TITLE = "depthstream"


def check_display() -> None:
    """Fail early, with advice, where no window can open."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("no display to open a window on (DISPLAY is not set); use --display none")


class WindowDisplay:
    """Shows the newest result of a running pipeline and handles the keys."""

    def __init__(self, snapshot_dir: Path = Path(".")) -> None:
        self.snapshot_dir = snapshot_dir
        self.paused = False
        self._shown: object = None

    def run(self, pipeline: Pipeline) -> None:
        """Until the pipeline ends or the user quits."""
        cv2.namedWindow(TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        try:
            while not pipeline.done.is_set():
                self._show(pipeline)
                key = cv2.waitKey(10) & 0xFF
                if key in (ord("q"), 27) or cv2.getWindowProperty(TITLE, cv2.WND_PROP_VISIBLE) < 1:
                    break
                self._handle(key, pipeline)
        finally:
            pipeline.stop()
            cv2.destroyWindow(TITLE)
            cv2.waitKey(1)

    def _show(self, pipeline: Pipeline) -> None:
        result = pipeline.latest
        reconnecting = pipeline.source.status.state == RECONNECTING
        if result is None or (self.paused and not reconnecting):
            return
        if result is self._shown and not reconnecting:
            return
        view = result.view
        if reconnecting:
            view = view.copy()
            draw_banner(view, "RECONNECTING")
        cv2.imshow(TITLE, view)
        self._shown = result

    def _handle(self, key: int, pipeline: Pipeline) -> None:
        renderer = pipeline.renderer
        if key == ord("c"):
            names = list(COLORMAPS)
            renderer.colorizer.name = names[(names.index(renderer.colorizer.name) + 1) % len(names)]
            log.info("colour map: %s", renderer.colorizer.name)
        elif key == ord("f"):
            renderer.normalizer.frozen = not renderer.normalizer.frozen
            log.info("colour range %s", "frozen" if renderer.normalizer.frozen else "following")
        elif key == ord(" "):
            self.paused = not self.paused
        elif key == ord("s") and pipeline.latest is not None:
            self.snapshot(
                pipeline.latest.view, pipeline.latest.depth.depth, pipeline.latest.frame.seq
            )

    def snapshot(self, view: np.ndarray, depth: np.ndarray, seq: int) -> Path:
        """Write ``snapshot-<seq>.png`` and ``snapshot-<seq>.npy``; returns the PNG path."""
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        png = self.snapshot_dir / f"snapshot-{seq:06d}.png"
        cv2.imwrite(str(png), view)
        np.save(png.with_suffix(".npy"), depth.astype(np.float32))
        log.info("snapshot: %s (+ .npy)", png)
        return png
