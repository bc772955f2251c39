"""The one place a pipeline is put together, for every command and the Python API: the
camera's settings (built once), its source, model, renderer, stabilizer, obstacle meter,
and every output it was asked for (:class:`stream.outputs.Outputs`)."""

from __future__ import annotations

from depthstream.capture.source import Source
from depthstream.capture.spec import open_source
from depthstream.stream.config import CameraEntry, CameraSettings, Config
from depthstream.stream.errors import UserError
from depthstream.stream.estimator import DepthEstimator, open_estimator
from depthstream.stream.obstacles import ObstacleMeter
from depthstream.stream.outputs import Outputs
from depthstream.stream.pipeline import Pipeline
from depthstream.stream.render.renderer import DepthRenderer
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
    outputs: Outputs | None = None,
) -> Pipeline:
    """A pipeline on ``source`` with its outputs open, not started yet, its model built for
    the source's size.  The outputs and the weights are checked before the source opens.

    ``offline``: files are read as fast as they are processed, every frame
    (else they play at their own pace, as a camera would).  ``obstacles``:
    the obstacle meter reads every frame, with the configured calibration.
    """
    outputs = (outputs or Outputs()).checked(cfg)
    settings = CameraSettings(name="main", source=source, config=cfg)
    estimator = open_estimator(cfg.model, weights)
    src = open_source(source, cfg.camera, cfg.network, live_file=not offline, loop=loop)
    try:
        estimator.warm_up(*src.size)
    except BaseException:
        src.close()
        raise
    readings = obstacles or outputs.readings
    pipeline = _pipeline(settings, src, estimator, readings, overlay, max_frames=max_frames)
    _add_outputs([pipeline], outputs)
    return pipeline


def open_cameras(
    cfg: Config,
    cameras: list[CameraEntry],
    *,
    weights: str | None = None,
    obstacles: bool = False,
    overlay: bool = True,
    outputs: Outputs | None = None,
) -> dict[str, Pipeline]:
    """A live pipeline per camera (files loop) with its outputs open, not started yet, each
    with its own settings (built here, once); one runtime per model in memory, shared by
    the cameras that run it, turns taken first come first served (:mod:`stream.turns`).
    With several cameras a camera that does not answer yet is retried in the background."""
    outputs = (outputs or Outputs()).checked(cfg)
    named = len(cameras) > 1
    if named and outputs.publish and "{camera}" not in outputs.publish:
        raise UserError("with several cameras, --publish needs '{camera}' in its URL")
    settings = [entry.settings(cfg, named) for entry in cameras]
    models = {own.config.model.name: own.config.model for own in settings}
    estimators = {name: open_estimator(model, weights) for name, model in models.items()}
    turns = Turns() if named else None
    sources: list[Source] = []
    try:
        for own in settings:
            src = open_source(own.source, cfg.camera, cfg.network, loop=True, wait=named)
            sources.append(src)
            if src.size is not None:
                model = own.config.model
                estimators[model.name].at_size(model.size()).warm_up(*src.size)
    except BaseException:
        for src in sources:
            src.close()
        raise
    readings = obstacles or outputs.readings
    pipelines = {
        own.name: _pipeline(own, src, estimators[own.config.model.name], readings, overlay, turns)
        for own, src in zip(settings, sources, strict=True)
    }
    _add_outputs(list(pipelines.values()), outputs)
    return pipelines


def _pipeline(
    settings: CameraSettings,
    src: Source,
    estimator: DepthEstimator,
    obstacles: bool,
    overlay: bool,
    turns: Turns | None = None,
    *,
    max_frames: int | None = None,
) -> Pipeline:
    cfg = settings.config
    return Pipeline(
        src,
        estimator.at_size(cfg.model.size()),
        renderer_for(cfg, estimator),
        settings=settings,
        queue_size=cfg.pipeline.queue_size,
        max_frames=max_frames,
        overlay=overlay,
        log_interval=cfg.output.log_interval,
        readout=ObstacleMeter.from_config(cfg.obstacles, cfg.calibration) if obstacles else None,
        stabilizer=stabilizer_for(cfg),
        turns=turns,
    )


def _add_outputs(pipelines: list[Pipeline], outputs: Outputs) -> None:
    """Each pipeline's output sinks, added; if one cannot open, every pipeline is closed
    (its source and the sinks it has so far)."""
    try:
        for pipeline in pipelines:
            for sink in outputs.sinks(pipeline):
                pipeline.add_sink(sink)
    except BaseException:
        for pipeline in pipelines:
            pipeline.join()
        raise
