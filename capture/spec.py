"""One source spec string -> the right :class:`Source`.

``sample``, a camera index or ``/dev/videoN``, an ``rtsp://``/``rtsps://``/
``http(s)://`` URL, or a video file path.
"""

from __future__ import annotations

import re

from depthstream.capture.camera import CameraSource
from depthstream.capture.errors import SourceError
from depthstream.capture.file import FileSource
from depthstream.capture.network import SCHEMES, NetworkSource
from depthstream.capture.options import CameraOptions, NetworkOptions
from depthstream.capture.pacing import PacedSource
from depthstream.capture.sample import SAMPLE_NAME, SAMPLE_PATH
from depthstream.capture.source import Source

_DEVICE = re.compile(r"^(?:\d+|/dev/video\d+)$")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_source(
    spec: str,
    camera: CameraOptions | None = None,
    network: NetworkOptions | None = None,
    *,
    live_file: bool = True,
    loop: bool = False,
    wait: bool = False,
) -> Source:
    """Open ``spec``.  ``live_file`` paces files at their frame rate; ``loop`` repeats them;
    ``wait`` retries a network camera that does not answer yet instead of failing."""
    if spec == SAMPLE_NAME:
        return FileSource(SAMPLE_PATH, live=live_file, loop=loop)
    if _DEVICE.match(spec):
        return CameraSource(int(spec) if spec.isdigit() else spec, camera)
    url = _URL.match(spec)
    if url:
        if url.group(1).lower() not in SCHEMES:
            raise SourceError(
                f"unsupported source scheme {url.group(1)}:// "
                f"(use {', '.join(s + '://' for s in SCHEMES)}, a camera index, a file or 'sample')"
            )
        network = network or NetworkOptions()
        source = NetworkSource(spec, network, wait=wait)
        return PacedSource(source, network.jitter_buffer) if network.jitter_buffer else source
    return FileSource(spec, live=live_file, loop=loop)
