"""Loopback-only WebRTC host candidates, for viewers on the same machine.

aioice gathers host candidates from every interface except loopback.  On a
machine with no other interface (a container, an isolated namespace) that
leaves none; offering exactly 127.0.0.1 also guarantees no media leaves it.
"""

from __future__ import annotations

import aioice.ice


def use_loopback_candidates() -> None:
    """Make every peer connection in this process gather 127.0.0.1 only."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
