"""The ``depthstream`` package: depth from Python and the command line.

    from depthstream import open_depth, obstacle_readings

The repository keeps its layers as top-level folders (``capture/``, ``stream/``,
``web/``); they install as ``depthstream.capture``, ``depthstream.stream`` and
``depthstream.web``.  The API is loaded on first use, so ``import depthstream`` and
``depthstream --version`` stay light.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from depthstream.capture.errors import SourceError
from depthstream.stream.errors import UserError

_API = ("DepthFrame", "DepthStream", "Outputs", "obstacle_readings", "open_depth")


def _version() -> str:
    try:
        return metadata.version("depthstream")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


__version__ = _version()


def __getattr__(name: str) -> Any:
    if name in _API:
        from depthstream.stream import api

        return getattr(api, name)
    raise AttributeError(f"module 'depthstream' has no attribute {name!r}")


__all__ = [*_API, "SourceError", "UserError", "__version__"]
