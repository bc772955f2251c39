"""Browser delivery over WebRTC (aiohttp + aiortc)."""
