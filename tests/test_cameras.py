"""Several cameras in one ``serve``: two real RTSP cameras (GStreamer's server), aiortc viewers
on each camera's WHEP URL, one camera killed and brought back while the other goes on."""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from depthstream.capture.image import read_image
from depthstream.stream import assembly, calibration
from depthstream.stream.assembly import open_cameras
from depthstream.stream.calibration import sample_points
from depthstream.stream.config import ModelConfig, load_config
from depthstream.stream.errors import UserError
from depthstream.stream.estimator import open_estimator
from depthstream.stream.sinks.latest import LatestResult
from depthstream.web.server import create_app
from depthstream.web.state import STATE
from tests.conftest import DATA, assert_clean_error, require, run_synthetic
from tests.tools.rtsp import RtspServer, free_port, gst_available, loop_clip
from tests.tools.serving import frames_processed, health, metrics, start_serve, stop
from tests.webrtc import Viewer, loopback_only


@pytest.fixture
def two_cameras(tmp_path: Path) -> Iterator[tuple[RtspServer, RtspServer]]:
    require(gst_available(), "GStreamer RTSP server (python3-gst-1.0) is not installed")
    clip = loop_clip(tmp_path / "long.mp4", 300)
    servers = (RtspServer(clip, free_port()), RtspServer(clip, free_port()))
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


async def _watch(http: aiohttp.ClientSession, base: str, camera: str) -> Viewer:
    viewer = Viewer()
    reply = await http.post(
        f"{base}/whep/{camera}",
        data=await viewer.offer(),
        headers={"Content-Type": "application/sdp"},
    )
    assert reply.status == 201, await reply.text()
    await viewer.accept(await reply.text())
    return viewer


def _rate(base: str, camera: str, seconds: float) -> float:
    before, t0 = frames_processed(base, camera), time.monotonic()
    time.sleep(seconds)
    return (frames_processed(base, camera) - before) / (time.monotonic() - t0)


def _ages(viewer: Viewer, since: int) -> list[float]:
    return [r["age_ms"] for r in viewer.records[since:]]


def test_two_cameras_share_one_model_and_one_dying_costs_the_other_nothing(
    two_cameras, tmp_path, monkeypatch
) -> None:
    loopback_only(monkeypatch)
    door, yard = two_cameras
    proc, base = start_serve(
        tmp_path,
        "--camera", f"door={door.url}", "--camera", f"yard={yard.url}",
        config="[web]\nice_loopback = true\n", source=None,
    )  # fmt: skip
    try:

        async def session() -> dict:
            async with aiohttp.ClientSession() as http:
                listed = await (await http.get(f"{base}/api/cameras")).json()
                assert [c["name"] for c in listed] == ["door", "yard"]
                assert [c["whep"] for c in listed] == ["/whep/door", "/whep/yard"]
                unknown = await http.post(
                    f"{base}/whep/garage", data="v=0", headers={"Content-Type": "application/sdp"}
                )
                assert unknown.status == 404 and "door, yard" in (await unknown.json())["error"]
                a, b = await _watch(http, base, "door"), await _watch(http, base, "yard")
                frames_a, frames_b = await asyncio.gather(a.frames(10), b.frames(10))
                assert frames_a[-1].width == frames_b[-1].width == 640
                await asyncio.sleep(2)
                assert {r["camera"] for r in a.records} == {"door"}
                assert {r["camera"] for r in b.records} == {"yard"}
                assert health(base)["cameras"]["door"]["viewers"] == 1

                loop = asyncio.get_running_loop()
                mark = len(b.records)
                both = await loop.run_in_executor(None, _rate, base, "yard", 8)
                ages_both = _ages(b, mark)

                door.stop()  # the door camera loses power
                deadline = time.monotonic() + 30
                while health(base)["cameras"]["door"]["source"] != "reconnecting":
                    assert time.monotonic() < deadline, "the loss was not noticed"
                    await asyncio.sleep(0.2)
                mark = len(b.records)
                alone = await loop.run_in_executor(None, _rate, base, "yard", 8)
                ages_alone = _ages(b, mark)

                door.start()
                deadline = time.monotonic() + 60
                while health(base)["cameras"]["door"]["source"] != "running":
                    assert time.monotonic() < deadline, "the door camera did not come back"
                    await asyncio.sleep(0.5)
                mark_a = len(a.records)
                await asyncio.sleep(3)
                resumed = len(a.records) - mark_a
                await a.close()
                await b.close()
                return {
                    "both": both,
                    "alone": alone,
                    "ages_both": ages_both,
                    "ages_alone": ages_alone,
                    "resumed": resumed,
                }

        out = asyncio.run(session())
        text = metrics(base)
        assert 'depthstream_reconnects_total{camera="door"} 1' in text
        assert 'depthstream_reconnects_total{camera="yard"} 0' in text
        assert frames_processed(base, "door") > 0 and frames_processed(base, "yard") > 0
    finally:
        err = stop(proc)
    p50_both, p50_alone = statistics.median(out["ages_both"]), statistics.median(out["ages_alone"])
    print(
        f"\n[cameras] yard: {out['both']:.1f} fps, age p50 {p50_both:.0f} ms with door; "
        f"{out['alone']:.1f} fps, age p50 {p50_alone:.0f} ms while door reconnects"
    )
    # The yard camera neither slows down nor ages while the door camera is gone.
    assert out["alone"] >= 0.85 * out["both"]
    assert p50_alone <= 1.25 * p50_both + 20
    assert out["resumed"] > 10, "the door viewer got nothing after the reconnect"
    assert "door" in err


def test_a_camera_down_at_start_is_waited_for_while_the_others_stream(tmp_path) -> None:
    """The door camera is off when serve starts: the yard camera streams, the door camera
    says "reconnecting", and it joins when its RTSP server comes up."""
    require(gst_available(), "GStreamer RTSP server (python3-gst-1.0) is not installed")
    clip = loop_clip(tmp_path / "long.mp4", 120)
    door, yard = RtspServer(clip, free_port()), RtspServer(clip, free_port())
    yard.start()
    try:
        proc, base = start_serve(
            tmp_path, "--camera", f"yard={yard.url}", "--camera", f"door={door.url}", source=None
        )
        try:
            cameras = health(base)["cameras"]
            assert cameras["door"]["source"] == "reconnecting"
            assert cameras["door"]["status"] == "ok" and cameras["yard"]["source"] == "running"
            assert _rate(base, "yard", 3) > 1 and frames_processed(base, "door") == 0
            door.start()
            deadline = time.monotonic() + 60
            while frames_processed(base, "door") < 10:
                assert time.monotonic() < deadline, "the door camera never joined"
                time.sleep(0.5)
            assert health(base)["cameras"]["door"]["source"] == "running"
            # Reached late is not lost and found again.
            assert 'depthstream_reconnects_total{camera="door"} 0' in metrics(base)
        finally:
            err = stop(proc)
        assert "door" in err and "retrying in the background" in err and "answered" in err
    finally:
        door.stop()
        yard.stop()


def test_one_camera_that_does_not_answer_is_still_a_clear_error(tmp_path) -> None:
    """Alone, an unreachable camera is most likely a wrong URL: said at once."""
    proc = run_synthetic("serve", f"rtsp://127.0.0.1:{free_port()}/cam", cwd=tmp_path)
    assert "cannot open stream" in assert_clean_error(proc)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--camera", "door"), "give NAME=SOURCE"),
        (("--camera", "a b=sample"), "camera name"),
        (("--camera", "a=sample", "--camera", "a=sample"), "must differ"),
        (("sample", "--camera", "a=sample"), "not both"),
        (("--camera", "a=sample", "--camera", "b=sample", "--publish", "rtsp://h/x"), "{camera}"),
    ],
)
def test_bad_camera_lists_are_one_line_errors(tmp_path: Path, args, message: str) -> None:
    proc = run_synthetic("serve", *args, cwd=tmp_path)
    assert message in assert_clean_error(proc)


def test_each_camera_runs_its_own_settings_on_the_one_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "c.toml").write_text(
        "[calibration]\nscale = 0.02\nshift = 0.1\n"
        '[[cameras]]\nname = "near"\nsource = "sample"\ninput_size = 128\n'
        "[cameras.calibration]\nscale = 0.05\n[cameras.obstacles]\nsectors = 3\n"
        '[[cameras]]\nname = "far"\nsource = "sample"\n'
    )
    cfg = load_config(tmp_path / "c.toml")
    opened = []
    real_open = assembly.open_estimator
    monkeypatch.setattr(
        assembly, "open_estimator", lambda *a, **k: opened.append(1) or real_open(*a, **k)
    )
    pipelines = open_cameras(cfg, cfg.cameras, weights="synthetic", obstacles=True)
    near, far = pipelines["near"], pipelines["far"]
    try:
        assert len(opened) == 1  # one set of weights for both
        assert (near.settings.name, near.settings.named) == ("near", True)
        sizes = (near.settings.config.model.size(), far.settings.config.model.size())
        assert sizes == (128, 256)
        assert near.calibration().scale == 0.05 and far.calibration().scale == 0.02
        readings = {}
        for name, pipeline in pipelines.items():
            latest = LatestResult()
            pipeline.add_sink(latest)
            pipeline.start()
            readings[name] = latest
        got = {name: latest.get(timeout=60) for name, latest in readings.items()}
        assert len(got["near"].obstacles.sectors) == 3 and len(got["far"].obstacles.sectors) == 5
        # Each at its own network size (the sample is 640x272).
        assert got["near"].depth.raw.shape[1] == 128 and got["far"].depth.raw.shape[1] == 256
    finally:
        for pipeline in pipelines.values():
            pipeline.join()


def test_the_page_calibrates_each_camera_into_its_own_config_entry(tmp_path: Path) -> None:
    """``POST /api/calibration`` for the "far" camera: applied to that camera only, written
    into its ``[[cameras]]`` entry (comments and the other entry kept), its anchor beside."""
    path = tmp_path / "c.toml"
    path.write_text(
        '# two cameras\n[[cameras]]\nname = "near"\nsource = "sample"\n\n'
        '[[cameras]]\nname = "far"\nsource = "sample"\n'
    )
    cfg = load_config(path)
    pipelines = open_cameras(cfg, cfg.cameras, weights="synthetic", obstacles=True, overlay=False)

    async def main() -> dict:
        app = create_app(pipelines, cfg, path)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            far = app[STATE].feed("far")
            deadline = time.monotonic() + 60
            while far.hub.latest is None:
                assert time.monotonic() < deadline, "no frame from the far camera"
                await asyncio.sleep(0.2)
            values = sample_points(far.hub.latest.depth.resized, [(50, 50), (600, 200)], 2)
            points = [
                [50, 50, 1 / (0.01 * values[0] + 0.1)],
                [600, 200, 1 / (0.01 * values[1] + 0.1)],
            ]
            reply = await client.post("/api/calibration", json={"points": points, "camera": "far"})
            answer = await reply.json()
            assert reply.status == 200 and answer["saved_to"] == str(path), answer
            assert far.pipeline.calibration().scale == pytest.approx(answer["scale"])
            assert app[STATE].feed("near").pipeline.calibration() is None
            return answer

    answer = asyncio.run(main())
    saved = load_config(path)
    assert saved.cameras[1].calibration.scale == pytest.approx(answer["scale"])
    assert saved.cameras[0].calibration is None and saved.calibration.scale == 0
    assert path.read_text().startswith("# two cameras")
    assert (tmp_path / "c.far.anchor.npz").is_file()
    with pytest.raises(UserError, match="no \\[\\[cameras\\]\\] entry"):
        fit = calibration.Fit(1.0, 0.0, 0.0, 2, 0)
        calibration.save(path, saved.calibration, [], 2, fit, camera="gate")


def test_rest_depth_uses_the_named_cameras_model_and_calibration(tmp_path: Path) -> None:
    """``POST /api/depth?camera=NAME``: that camera's network size and its calibration (a
    point cloud for the calibrated one, a 409 for the other), not the first camera's."""
    (tmp_path / "c.toml").write_text(
        "[camera]\nhfov_deg = 60.0\n"
        '[[cameras]]\nname = "near"\nsource = "sample"\ninput_size = 128\n'
        "[cameras.calibration]\nscale = 0.02\nshift = 0.1\n"
        '[[cameras]]\nname = "far"\nsource = "sample"\n'
    )
    cfg = load_config(tmp_path / "c.toml")
    pipelines = open_cameras(cfg, cfg.cameras, weights="synthetic", obstacles=True, overlay=False)
    image = (DATA / "cases" / "chelsea" / "chelsea.png").read_bytes()
    rgb = read_image(str(DATA / "cases" / "chelsea" / "chelsea.png"))
    own = {
        size: open_estimator(ModelConfig(input_size=size), "synthetic")(rgb).resized
        for size in (128, 256)
    }

    async def post(client: TestClient, query: str) -> aiohttp.ClientResponse:
        return await client.post(f"/api/depth?{query}", data={"image": io.BytesIO(image)})

    async def main() -> None:
        app = create_app(pipelines, cfg, None)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for name, size in (("near", 128), ("far", 256)):
                reply = await post(client, f"camera={name}&format=npy")
                assert reply.status == 200
                depth = np.load(io.BytesIO(await reply.read()))
                np.testing.assert_allclose(depth, own[size], rtol=1e-5, atol=1e-6)
            assert (await post(client, "camera=near&format=ply")).status == 200
            health = await (await client.get("/healthz")).json()
            assert health["cameras"]["far"]["model"] == "midas-small"
            refused = await post(client, "camera=far&format=ply")
            assert refused.status == 409 and "calibrate first" in (await refused.json())["error"]

    asyncio.run(main())
