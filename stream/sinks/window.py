"""The live OpenCV window, driven from the main thread (HighGUI wants that).

Keys: q/Esc quit, c next colour map, s snapshot (PNG of the view, float
depth as .npy and, when calibrated with a known lens, a coloured point cloud
as .ply), space pause the picture, f freeze the colour range.  The
window is one of the pipeline's sinks; what it changes, it changes through
the renderer's :meth:`~stream.render.renderer.DepthRenderer.configure`.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import cv2
import numpy as np

from depthstream.capture.source import RECONNECTING
from depthstream.stream.config import COLORMAPS
from depthstream.stream.errors import UserError
from depthstream.stream.pipeline import Pipeline, Result
from depthstream.stream.render.overlay import draw_banner
from depthstream.stream.scene import Scenes

log = logging.getLogger("depthstream")

TITLE = "depthstream"


def check_display() -> None:
    """Fail early, with advice, where no window can open."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("no display to open a window on (DISPLAY is not set); use --display none")


class WindowDisplay:
    """Shows the newest result and handles the keys, until the pipeline ends or the user quits."""

    def __init__(self, snapshot_dir: Path = Path("."), scenes: Scenes | None = None) -> None:
        self.snapshot_dir = snapshot_dir
        self.scenes = scenes
        self.paused = False
        self._latest: Result | None = None
        self._shown: Result | None = None
        self._lock = threading.Lock()

    def write(self, result: Result) -> None:
        """Sink: keep the newest result for the next redraw."""
        with self._lock:
            self._latest = result

    def close(self) -> None:
        """Nothing to release here: the window itself closes on the main thread in :meth:`run`."""

    def run(self, pipeline: Pipeline) -> None:
        """Until the pipeline ends or the user quits (then the caller joins the pipeline)."""
        cv2.namedWindow(TITLE, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        try:
            while not pipeline.finished():
                self._show(pipeline.status().source == RECONNECTING)
                key = cv2.waitKey(10) & 0xFF
                if key in (ord("q"), 27) or cv2.getWindowProperty(TITLE, cv2.WND_PROP_VISIBLE) < 1:
                    break
                self.handle_key(key, pipeline)
        finally:
            pipeline.stop()
            cv2.destroyWindow(TITLE)
            cv2.waitKey(1)

    def _show(self, reconnecting: bool) -> None:
        with self._lock:
            result = self._latest
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

    def handle_key(self, key: int, pipeline: Pipeline) -> None:
        """What one key press does (the keys the module docstring lists, but quitting)."""
        if key == ord("c"):
            current = pipeline.render_settings().colormap
            following = COLORMAPS[(COLORMAPS.index(current) + 1) % len(COLORMAPS)]
            log.info("colour map: %s", pipeline.configure_render(colormap=following).colormap)
        elif key == ord("f"):
            freeze = not pipeline.render_settings().freeze
            frozen = pipeline.configure_render(freeze=freeze).freeze
            log.info("colour range %s", "frozen" if frozen else "following")
        elif key == ord(" "):
            self.paused = not self.paused
        elif key == ord("s"):
            with self._lock:
                result = self._latest
            if result is not None:
                self.snapshot(result)

    def snapshot(self, result: Result) -> Path:
        """Write ``snapshot-<seq>.png``, ``.npy`` and (when it can) ``.ply``; returns the PNG."""
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        png = self.snapshot_dir / f"snapshot-{result.frame.seq:06d}.png"
        cv2.imwrite(str(png), result.view)
        np.save(png.with_suffix(".npy"), result.depth.resized.astype(np.float32))
        scene = self.scenes.scene(result) if self.scenes is not None else None
        spatial = scene is not None and scene.cloud is not None
        if spatial:
            scene.write_ply(png.with_suffix(".ply"))
        log.info("snapshot: %s (+ .npy%s)", png, ", .ply" if spatial else "")
        return png
