"""Inference, normalization, rendering and the pipeline that wires them together.

The Python API (:mod:`stream.api`) is importable from here: ``from stream
import open_depth``.  It is loaded on first use, so importing any other part
of stream stays light.
"""

from __future__ import annotations

from typing import Any

_API = ("DepthFrame", "DepthStream", "obstacle_readings", "open_depth")


def __getattr__(name: str) -> Any:
    if name in _API:
        from stream import api

        return getattr(api, name)
    raise AttributeError(f"module 'stream' has no attribute {name!r}")


__all__ = list(_API)
