"""VP8 encoding of rendered frames, for the one encoder every viewer shares.

Real-time libvpx at a fixed bitrate, one thread, no look-ahead: one frame in,
one packet out, at once.  Fixed, because a packet goes to every viewer, so no
viewer's congestion estimate can steer it.  Key frames come only when asked
(see :mod:`web.broadcast`), and whenever the frame size changes: the codec is
then opened again, and its first packet is a key frame.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType

TIME_BASE = Fraction(1, 90_000)
# libvpx would put in a key frame of its own every kf_max_dist frames; the
# broadcaster decides instead, by time.
NO_AUTOMATIC_KEYFRAMES = 1 << 30


class Vp8Encoder:
    def __init__(self, bitrate: int) -> None:
        self.bitrate = bitrate
        self._codec: av.VideoCodecContext | None = None

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.time_base = TIME_BASE
        codec.bit_rate = self.bitrate
        codec.gop_size = NO_AUTOMATIC_KEYFRAMES
        codec.thread_count = 1
        rate = str(self.bitrate)
        codec.options = {
            "deadline": "realtime",
            "cpu-used": "-6",
            "lag-in-frames": "0",
            # minrate = maxrate = bitrate is FFmpeg's way to ask libvpx for CBR.
            "minrate": rate,
            "maxrate": rate,
            "bufsize": rate,
        }
        return codec

    def encode(self, view: np.ndarray, pts: int, keyframe: bool) -> list[av.Packet]:
        """Packets for one BGR frame whose time is ``pts`` (in :data:`TIME_BASE`)."""
        height, width = view.shape[:2]
        codec = self._codec
        if codec is None or (codec.width, codec.height) != (width, height):
            codec = self._codec = self._open(width, height)
        frame = av.VideoFrame.from_ndarray(view, format="bgr24")
        frame.pts, frame.time_base = pts, TIME_BASE
        if keyframe:
            frame.pict_type = PictureType.I
        packets = codec.encode(frame)
        for packet in packets:
            packet.time_base = TIME_BASE
        return packets
