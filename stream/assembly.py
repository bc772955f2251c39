"""The one place a pipeline is put together: config + source spec (+ readout), for every
command and the Python API.  Outputs are added to the returned pipeline as sinks."""

from __future__ import annotations

from capture.spec import open_source
from stream.calibration import stored_fit
from stream.config import Config
from stream.estimator import DepthEstimator, open_estimator
from stream.geometry import Projector
from stream.obstacles import ObstacleMeter
from stream.pipeline import Pipeline
from stream.render.renderer import DepthRenderer
from stream.scene import Scenes
from stream.stabilizer import Anchor, Stabilizer


def renderer_for(cfg: Config, estimator: DepthEstimator) -> DepthRenderer:
    """A renderer as configured, stamping what the estimator's weights require."""
    return DepthRenderer.from_config(cfg.normalize, cfg.render, estimator.stamp)


def stabilizer_for(cfg: Config) -> Stabilizer | None:
    """The configured stabilizer (None when off), anchored on the calibration's frame."""
    if not cfg.temporal.stabilize:
        return None
    anchor = cfg.calibration.anchor
    return Stabilizer(cfg.temporal, Anchor.load(anchor) if anchor else None)


def scenes_for(cfg: Config) -> Scenes:
    """3-D views of results with ``[camera]``, ``[geometry]`` and the stored calibration."""
    return Scenes(Projector(cfg.camera, cfg.geometry), stored_fit(cfg.calibration))


def open_pipeline(
    cfg: Config,
    source: str,
    *,
    weights: str | None = None,
    offline: bool = False,
    loop: bool = False,
    obstacles: bool = False,
    overlay: bool = True,
    max_frames: int | None = None,
) -> Pipeline:
    """A pipeline on ``source``, not started yet, with its model built for the source's size.

    ``offline``: files are read as fast as they are processed, every frame
    (else they play at their own pace, as a camera would).  ``obstacles``:
    the obstacle meter reads every frame, with the configured calibration.
    """
    stabilizer = stabilizer_for(cfg)
    src = open_source(source, cfg.camera, cfg.network, live_file=not offline, loop=loop)
    try:
        estimator = open_estimator(cfg.model, weights)
        estimator.warm_up(*src.size)
    except BaseException:
        src.close()
        raise
    return Pipeline(
        src,
        estimator,
        renderer_for(cfg, estimator),
        queue_size=cfg.pipeline.queue_size,
        max_frames=max_frames,
        overlay=overlay,
        log_interval=cfg.output.log_interval,
        readout=ObstacleMeter.from_config(cfg.obstacles, cfg.calibration) if obstacles else None,
        stabilizer=stabilizer,
    )
