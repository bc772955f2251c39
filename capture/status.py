"""What a source is doing right now, shared with whoever shows or serves the output."""

from __future__ import annotations

from dataclasses import dataclass

RUNNING = "running"
RECONNECTING = "reconnecting"
ENDED = "ended"


@dataclass
class SourceStatus:
    """Written by the capture thread, read by outputs (single attribute writes only).

    ``state``: running / reconnecting / ended.  ``corrupt``: frames or packets
    that failed to decode and were skipped.
    """

    state: str = RUNNING
    reconnects: int = 0
    corrupt: int = 0
