"""The server: WebRTC (aiortc viewers, WHEP), REST, settings, health and metrics.

Driven through aiohttp's test server on 127.0.0.1 with a real pipeline on the
bundled clip; WebRTC candidates are restricted to loopback.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import zlib

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCRtpReceiver

from depthstream.capture.spec import open_source
from depthstream.stream.assembly import stabilizer_for
from depthstream.stream.config import CameraSettings, Config, WebConfig
from depthstream.stream.pipeline import Pipeline
from depthstream.stream.render.normalizer import EmaNormalizer
from depthstream.stream.render.renderer import DepthRenderer
from depthstream.stream.stabilizer import STATES
from depthstream.web.server import create_app
from depthstream.web.state import STATE
from tests.conftest import DATA
from tests.media import read_ply
from tests.webrtc import Viewer, loopback_only

CHELSEA = (DATA / "cases" / "chelsea" / "chelsea.png").read_bytes()


JSON = {"Content-Type": "application/json"}


def serve(estimator, body, cfg: Config | None = None, meter=None, config_path=None, renderer=None):
    """Run ``body(client, state)`` against a started server on a real pipeline playing the
    sample clip, then shut it down."""
    cfg = cfg or Config()
    source = open_source("sample", live_file=True, loop=True)
    renderer = renderer or DepthRenderer(EmaNormalizer(), "inferno")
    pipeline = Pipeline(
        source,
        estimator,
        renderer,
        settings=CameraSettings(config=cfg),
        overlay=False,
        readout=meter,
        stabilizer=stabilizer_for(cfg),
    )

    async def main():
        app = create_app(pipeline, cfg, config_path)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await body(client, app[STATE])

    return asyncio.run(main())


async def _until(condition, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
        )

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def test_rest_depth_in_every_format(estimator) -> None:
    async def body(client, _state):
        png = await client.post("/api/depth", data={"image": io.BytesIO(CHELSEA)})
        assert png.status == 200 and png.content_type == "image/png"
        heat = cv2.imdecode(np.frombuffer(await png.read(), np.uint8), cv2.IMREAD_COLOR)
        assert heat.shape == (300, 451, 3) and heat.std() > 10
        js = await client.post(
            "/api/depth?format=json", data=CHELSEA, headers={"Content-Type": "image/png"}
        )
        record = await js.json()
        assert {
            "width",
            "height",
            "depth_min",
            "depth_max",
            "inference_ms",
            "image_png_b64",
        } == set(record)
        assert (record["width"], record["height"]) == (451, 300)
        assert record["depth_max"] > record["depth_min"] and record["inference_ms"] > 0
        assert base64.b64decode(record["image_png_b64"])[:4] == b"\x89PNG"
        npy = await client.post("/api/depth?format=npy", data={"image": io.BytesIO(CHELSEA)})
        depth = np.load(io.BytesIO(await npy.read()))
        want = np.load(DATA / "cases" / "chelsea" / "output_resized.npy")
        assert depth.dtype == np.float32 and depth.shape == (300, 451)
        assert np.abs(depth - want).max() <= 1e-4 * (want.max() - want.min())

    serve(estimator, body)


def test_rest_depth_as_a_point_cloud_when_calibrated(estimator, tmp_path) -> None:
    async def refused(client, _state):
        reply = await client.post("/api/depth?format=ply", data={"image": io.BytesIO(CHELSEA)})
        assert reply.status == 409 and "calibrate first" in (await reply.json())["error"]

    serve(estimator, refused)

    cfg = Config()
    cfg.calibration.scale, cfg.calibration.shift = 0.02, 0.1
    cfg.camera.hfov_deg = 60.0

    async def cloud(client, _state):
        reply = await client.post("/api/depth?format=ply", data={"image": io.BytesIO(CHELSEA)})
        assert reply.status == 200
        return await reply.read()

    ply = serve(estimator, cloud, cfg)
    (tmp_path / "c.ply").write_bytes(ply)
    points = read_ply(tmp_path / "c.ply")
    assert len(points) > 5000 and (points["z"] > 0).all()
    header = ply.split(b"end_header")[0].decode()
    assert "comment intrinsics: approximate (from hfov_deg)" in header
    assert "comment depth_unit: metres" in header


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/api/depth", {"data": b""}, 400),
        ("POST", "/api/depth", {"data": b"hello, not an image" * 10}, 415),
        ("POST", "/api/depth", {"data": CHELSEA[:40_000]}, 400),
        ("POST", "/api/depth", {"data": CHELSEA[:20]}, 400),
        ("POST", "/api/depth", {"data": _png_header_only(60_000, 60_000)}, 413),
        ("POST", "/api/depth", {"data": {"picture": io.BytesIO(CHELSEA)}}, 400),
        ("POST", "/api/depth?format=tiff", {"data": CHELSEA}, 400),
        ("GET", "/api/depth", {}, 405),
        ("PUT", "/healthz", {}, 405),
        ("POST", "/api/settings", {"json": {"colormap": "rainbow"}}, 400),
        # Not said to be JSON: refused before it is read (a cross-origin simple request).
        ("POST", "/api/settings", {"data": b"{not json"}, 415),
        ("POST", "/offer", {"data": b"nonsense"}, 415),
        ("POST", "/api/settings", {"data": b"{not json", "headers": JSON}, 400),
        ("POST", "/offer", {"data": b"nonsense", "headers": JSON}, 400),
        ("POST", "/offer", {"json": {"sdp": "garbage", "type": "offer"}}, 400),
        ("POST", "/whep", {"data": b"v=0", "headers": {"Content-Type": "text/plain"}}, 415),
        (
            "POST",
            "/whep",
            {"data": b"v=0\r\nbroken", "headers": {"Content-Type": "application/sdp"}},
            400,
        ),
        ("DELETE", "/whep/nobody", {}, 404),
        ("GET", "/nothing-here", {}, 404),
    ],
)
def test_bad_requests_get_json_4xx_and_the_server_lives_on(
    estimator, method, path, kwargs, status
) -> None:
    async def body(client, _state):
        response = await client.request(method, path, **kwargs)
        assert response.status == status, await response.text()
        assert "error" in await response.json()
        assert (await client.get("/healthz")).status == 200

    serve(estimator, body)


def test_upload_over_the_size_limit_is_413(estimator) -> None:
    cfg = Config(web=WebConfig(max_upload_mb=0.1))

    async def body(client, _state):
        response = await client.post("/api/depth", data=CHELSEA)
        assert response.status == 413 and "error" in await response.json()

    serve(estimator, body, cfg)


def test_health_and_metrics(estimator) -> None:
    async def body(client, state):
        await _until(lambda: state.feed().pipeline.status().frames_processed >= 3)
        health = await (await client.get("/healthz")).json()
        assert health["status"] == "ok" and health["source"] == "running"
        assert health["frames_processed"] >= 3 and health["uptime_s"] >= 0
        text = await (await client.get("/metrics")).text()
        for name in (
            "depthstream_fps",
            "depthstream_frames_processed_total",
            "depthstream_frames_dropped_total",
            "depthstream_frames_corrupt_total",
            "depthstream_frames_failed_total",
            "depthstream_viewers",
            "depthstream_video_packets_encoded_total",
            "depthstream_reconnects_total",
            "depthstream_inference_seconds",
            "depthstream_frame_age_seconds_bucket",
            "depthstream_frame_age_seconds_count",
            "depthstream_stabilizer_frames_total",
        ):
            assert re.search(rf"^{name}[{{ ]", text, re.M), name
        for line in text.splitlines():
            assert line.startswith("#") or re.match(r"^\w+(\{[^}]*\})? \S+$", line), line
        state.feed().pipeline.stop()
        await _until(state.feed().pipeline.finished)
        dead = await client.get("/healthz")
        assert dead.status == 503 and (await dead.json())["status"] == "dead"

    serve(estimator, body)


def test_settings_change_the_shared_renderer(estimator) -> None:
    async def body(client, state):
        current = await (await client.get("/api/settings")).json()
        assert current["colormap"] == "inferno" and "turbo" in current["colormaps"]
        changed = await client.post(
            "/api/settings", json={"colormap": "turbo", "freeze": True, "layout": "side-by-side"}
        )
        assert (await changed.json())["colormap"] == "turbo"
        s = state.feed().pipeline.render_settings()
        assert (s.colormap, s.freeze, s.layout) == ("turbo", True, "side-by-side")

    serve(estimator, body)


def test_page_and_its_assets_are_served_locally(estimator) -> None:
    async def body(client, _state):
        page = await (await client.get("/")).text()
        assert "<video" in page and "/static/app.js" in page
        assert "http://" not in page and "https://" not in page
        script = await client.get("/static/app.js")
        assert script.status == 200 and "RTCPeerConnection" in await script.text()

    serve(estimator, body)


def test_offer_and_whep_viewers_receive_frames_and_records(estimator, monkeypatch) -> None:
    """Two viewers at once (JSON offer and WHEP); inference stays once per frame."""
    loopback_only(monkeypatch)

    async def body(client, state):
        a, b = Viewer(), Viewer()
        answer = await (
            await client.post("/offer", json={"sdp": await a.offer(), "type": "offer"})
        ).json()
        assert answer["type"] == "answer"
        await a.accept(answer["sdp"])
        whep = await client.post(
            "/whep", data=await b.offer(), headers={"Content-Type": "application/sdp"}
        )
        assert whep.status == 201 and whep.content_type == "application/sdp"
        location = whep.headers["Location"]
        await b.accept(await whep.text())
        frames_a, frames_b = await asyncio.gather(a.frames(8), b.frames(8))
        for frame in (frames_a[-1], frames_b[-1]):
            assert (frame.width, frame.height) == (640, 272)
            rgb = frame.to_ndarray(format="rgb24").astype(int)
            assert ((rgb[..., 0] - rgb[..., 2] > 40) & (rgb[..., 0] > 80)).mean() > 0.2
        await _until(lambda: a.records and b.records)
        assert {
            "frame",
            "capture_time",
            "fps",
            "inference_ms",
            "age_ms",
            "near",
            "far",
            "source",
            "stabilizer",
        } <= set(a.records[-1])
        assert a.records[-1]["stabilizer"] in STATES
        summary = state.feed().pipeline.summary()
        processed = summary["frames_processed"]
        assert processed <= summary["frames_captured"] - summary["frames_dropped"]
        # One encoder for both viewers: at most one packet per processed frame.
        assert 8 <= state.feed().broadcast.encoded <= processed
        assert len(state.peers.connections) == 2
        assert (await client.delete(location)).status == 200
        assert len(state.peers.connections) == 1
        await a.close()
        await b.close()
        await _until(lambda: not state.peers.connections, 30)

    serve(estimator, body)


def test_an_offer_without_vp8_is_refused(estimator, monkeypatch) -> None:
    """Every viewer shares one VP8 stream, so an H.264-only offer gets a 400, not a 500."""
    loopback_only(monkeypatch)

    async def body(client, state):
        viewer = Viewer()
        viewer.pc.addTransceiver("video", direction="recvonly").setCodecPreferences(
            [
                c
                for c in RTCRtpReceiver.getCapabilities("video").codecs
                if c.mimeType == "video/H264"
            ]
        )
        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        assert "VP8" not in viewer.pc.localDescription.sdp
        response = await client.post(
            "/offer", json={"sdp": viewer.pc.localDescription.sdp, "type": "offer"}
        )
        assert response.status == 400 and "error" in await response.json()
        assert not state.peers.connections
        assert (await client.get("/healthz")).status == 200
        await viewer.close()

    serve(estimator, body)
