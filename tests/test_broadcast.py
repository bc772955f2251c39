"""The shared VP8 stream: each result encoded once for all viewers, and every
viewer's packets decodable from the first one it gets.

Real libvpx encoding and FFmpeg VP8 decoding (PyAV) of frames from the bundled
clip.  The viewers are :class:`DepthTrack`s read directly, as aiortc's sender
reads them; aiortc and browsers on the same stream are in ``test_web`` and
``test_browser``.
"""

from __future__ import annotations

import asyncio
import json
import time

import av
import numpy as np

from depthstream.capture.decode import spread_frames
from depthstream.capture.sample import SAMPLE_PATH
from depthstream.capture.source import Frame
from depthstream.stream.estimator import DepthMap
from depthstream.stream.pipeline import Result
from depthstream.web.broadcast import RING, Broadcast
from depthstream.web.encoder import Vp8Encoder
from depthstream.web.hub import FrameHub
from depthstream.web.track import DepthTrack

NO_PERIODIC_KEYFRAMES = 3600.0
WAIT = 10.0


def frame_number(result: Result) -> dict[str, int]:
    return {"frame": result.frame.seq}


def broadcast_on(hub: FrameHub) -> Broadcast:
    return Broadcast(hub, Vp8Encoder(2_000_000), NO_PERIODIC_KEYFRAMES, frame_number)


def told_frames(records: list[str]) -> list[int]:
    return [json.loads(r)["frame"] for r in records]


def clip_results(count: int) -> list[Result]:
    """Results whose view is a real frame of the clip, far enough apart to differ."""
    frames = spread_frames(SAMPLE_PATH, count)
    empty = np.zeros((1, 1), np.float32)
    return [
        Result(
            frame=Frame(rgb=rgb, seq=i, pts=None, captured_at=time.monotonic()),
            depth=DepthMap(raw=empty, size=empty.shape),
            view=rgb[..., ::-1],
            inference_ms=0,
            age_ms=0,
            far=0,
            near=1,
        )
        for i, rgb in enumerate(frames)
    ]


async def publish(hub: FrameHub, broadcast: Broadcast, result: Result) -> None:
    """Hand ``result`` to the broadcast and wait until it is encoded."""
    before, deadline = broadcast.encoded, time.monotonic() + WAIT
    hub.write(result)
    while broadcast.encoded == before:
        assert time.monotonic() < deadline, "the frame was never encoded"
        await asyncio.sleep(0.005)


def decode(packets: list[av.Packet]) -> list[np.ndarray]:
    """What a viewer's decoder shows for the packets it was sent, in order."""
    decoder = av.CodecContext.create("vp8", "r")
    return [f.to_ndarray(format="bgr24") for p in packets for f in decoder.decode(p)]


def assert_shows(shown: list[np.ndarray], sent: list[Result]) -> None:
    """Each decoded picture is its own source frame, not a neighbour's."""
    assert len(shown) == len(sent)
    for picture, result in zip(shown, sent, strict=True):
        own = np.abs(picture.astype(int) - result.view).mean()
        assert own < 12, own


def test_every_viewer_sends_the_same_packets_encoded_once() -> None:
    results = clip_results(6)

    async def main() -> None:
        hub = FrameHub()
        hub.bind(asyncio.get_running_loop())
        broadcast = broadcast_on(hub)
        told: list[str] = []
        a, b = DepthTrack(broadcast, told.append), DepthTrack(broadcast, told.append)
        sent_a, sent_b = [], []
        for result in results:
            await publish(hub, broadcast, result)
            packet_a, packet_b = await asyncio.wait_for(asyncio.gather(a.recv(), b.recv()), WAIT)
            sent_a.append(packet_a)
            sent_b.append(packet_b)
        assert broadcast.encoded == len(results)
        assert all(pa is pb for pa, pb in zip(sent_a, sent_b, strict=True))
        assert told_frames(told) == [i for i in range(len(results)) for _ in (a, b)]
        assert sent_a[0].is_keyframe and not any(p.is_keyframe for p in sent_a[1:])
        assert_shows(decode(sent_a), results)
        a.stop()
        b.stop()
        hub.write(results[0])
        await asyncio.sleep(0.3)
        assert broadcast.encoded == len(results), "encoding goes on with nobody watching"
        broadcast.close()

    asyncio.run(main())


def test_a_viewer_that_joins_late_or_falls_behind_restarts_at_a_key_frame() -> None:
    results = clip_results(RING + 8)

    async def main() -> None:
        hub = FrameHub()
        hub.bind(asyncio.get_running_loop())
        broadcast = broadcast_on(hub)
        steady = DepthTrack(broadcast, lambda _r: None)
        steady_sent: list[av.Packet] = []

        async def next_frame(result: Result, late_recv=None) -> av.Packet | None:
            await publish(hub, broadcast, result)
            steady_sent.append(await asyncio.wait_for(steady.recv(), WAIT))
            return await asyncio.wait_for(late_recv, WAIT) if late_recv is not None else None

        for result in results[:3]:
            await next_frame(result)
        late_told: list[str] = []
        late = DepthTrack(broadcast, late_told.append)
        late_sent = [await next_frame(results[3], asyncio.ensure_future(late.recv()))]
        for result in results[4:6]:
            late_sent.append(await next_frame(result, late.recv()))
        for result in results[6:-1]:  # the late viewer reads nothing for RING + 1 packets
            await next_frame(result)
        late_sent.append(await next_frame(results[-1], asyncio.ensure_future(late.recv())))

        keyframes = [i for i, p in enumerate(steady_sent) if p.is_keyframe]
        assert keyframes == [0, 3, len(results) - 1]
        assert [p.is_keyframe for p in late_sent] == [True, False, False, True]
        assert all(any(p is s for s in steady_sent) for p in late_sent)
        assert told_frames(late_told) == [3, 4, 5, len(results) - 1]
        assert_shows(decode(late_sent), [*results[3:6], results[-1]])
        assert_shows(decode(steady_sent), results)
        broadcast.close()

    asyncio.run(main())
