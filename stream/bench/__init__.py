"""``depthstream bench``: model-only and whole-pipeline measurements, side by side."""
