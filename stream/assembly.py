"""The one place a pipeline is put together: config + source spec (+ readout), for every
command and the Python API.  Outputs are added to the returned pipeline as sinks."""

from __future__ import annotations

from depthstream.capture.source import Source
from depthstream.capture.spec import open_source
from depthstream.stream.calibration import stored_fit
from depthstream.stream.config import CameraEntry, Config
from depthstream.stream.estimator import DepthEstimator, open_estimator
from depthstream.stream.geometry import Projector
from depthstream.stream.obstacles import ObstacleMeter
from depthstream.stream.pipeline import Pipeline
from depthstream.stream.render.renderer import DepthRenderer
from depthstream.stream.scene import Scenes
from depthstream.stream.stabilizer import Anchor, Stabilizer
from depthstream.stream.turns import Turns


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
    estimator = open_estimator(cfg.model, weights)
    src = open_source(source, cfg.camera, cfg.network, live_file=not offline, loop=loop)
    try:
        estimator.warm_up(*src.size)
    except BaseException:
        src.close()
        raise
    return _pipeline(cfg, src, estimator, obstacles, overlay, max_frames)


def open_cameras(
    cfg: Config,
    cameras: list[CameraEntry],
    *,
    weights: str | None = None,
    obstacles: bool = False,
    overlay: bool = True,
) -> dict[str, Pipeline]:
    """A live pipeline per camera (files loop), not started yet, each with its own settings
    (:meth:`CameraEntry.settings`), all on one estimator: one set of weights in memory, turns
    taken first come first served (:mod:`stream.turns`).  With several cameras a network
    camera that does not answer yet is retried in the background, not an error."""
    estimator = open_estimator(cfg.model, weights)
    named = len(cameras) > 1
    turns = Turns() if named else None
    settings = {entry.name: entry.settings(cfg) for entry in cameras}
    sources: list[Source] = []
    try:
        for entry in cameras:
            src = open_source(entry.source, cfg.camera, cfg.network, loop=True, wait=named)
            sources.append(src)
            if src.size is not None:
                estimator.at_size(settings[entry.name].model.input_size).warm_up(*src.size)
    except BaseException:
        for src in sources:
            src.close()
        raise
    return {
        entry.name: _pipeline(
            settings[entry.name],
            src,
            estimator.at_size(settings[entry.name].model.input_size),
            obstacles,
            overlay,
            None,
            turns,
            entry.name if named else "",
        )
        for entry, src in zip(cameras, sources, strict=True)
    }


def _pipeline(
    cfg: Config,
    src: Source,
    estimator: DepthEstimator,
    obstacles: bool,
    overlay: bool,
    max_frames: int | None,
    turns: Turns | None = None,
    name: str = "",
) -> Pipeline:
    return Pipeline(
        src,
        estimator,
        renderer_for(cfg, estimator),
        queue_size=cfg.pipeline.queue_size,
        max_frames=max_frames,
        overlay=overlay,
        log_interval=cfg.output.log_interval,
        readout=ObstacleMeter.from_config(cfg.obstacles, cfg.calibration) if obstacles else None,
        stabilizer=stabilizer_for(cfg),
        turns=turns,
        name=name,
    )
