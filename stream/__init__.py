"""Inference, normalization, rendering and the pipeline that wires them together."""
