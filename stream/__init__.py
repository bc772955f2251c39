"""Inference, normalization, rendering and the pipeline that wires them together.

The Python API (:mod:`depthstream.stream.api`) is re-exported by the top-level package:
``from depthstream import open_depth``.
"""
