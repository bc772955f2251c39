"""Safe on a LAN: same-origin, Host, the access token, limits that hold, TLS.

Every request goes to a real server on 127.0.0.1 running a real pipeline on
the sample clip; the WebRTC offers are real aiortc offers.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from depthstream.capture.spec import open_source
from depthstream.stream.config import Config, WebConfig
from depthstream.stream.pipeline import Pipeline
from depthstream.stream.render.normalizer import EmaNormalizer
from depthstream.stream.render.renderer import DepthRenderer
from depthstream.web.guard import Guard, startup_warning
from depthstream.web.server import create_app, tls_context
from tests.test_web import _until, serve
from tests.webrtc import Viewer, loopback_only

JSON = {"Content-Type": "application/json"}


def web_cfg(**values) -> Config:
    cfg = Config()
    cfg.web = WebConfig(**values)
    return cfg


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_cross_origin_and_simple_requests_cannot_change_settings(estimator) -> None:
    async def body(client, state):
        before = state.feed().pipeline.render_settings()
        plain = await client.post(
            "/api/settings",
            data='{"colormap": "jet"}',
            headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
        )
        assert plain.status == 403 and "cross-origin" in (await plain.json())["error"]
        no_origin_plain = await client.post(
            "/api/settings", data='{"colormap": "jet"}', headers={"Content-Type": "text/plain"}
        )
        assert no_origin_plain.status == 415
        evil = await client.post(
            "/api/calibration",
            json={"points": [[1, 1, 1.0], [2, 2, 2.0]]},
            headers={"Origin": "http://evil.example"},
        )
        assert evil.status == 403
        assert state.feed().pipeline.render_settings() == before
        own = f"http://{client.host}:{client.port}"
        same = await client.post("/api/settings", json={"colormap": "jet"}, headers={"Origin": own})
        assert same.status == 200 and (await same.json())["colormap"] == "jet"

    serve(estimator, body)


def test_unknown_host_names_are_refused(estimator) -> None:
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 sends its own name."""

    async def body(client, _state):
        refused = await client.get("/api/settings", headers={"Host": "evil.example:8080"})
        assert refused.status == 403 and "Host" in (await refused.json())["error"]
        assert (await client.get("/api/settings", headers={"Host": "localhost:8080"})).status == 200

    serve(estimator, body)


def test_host_rules() -> None:
    loopback = Guard.from_config(WebConfig())
    assert loopback.host_allowed("127.0.0.1:8080") and loopback.host_allowed("[::1]:80")
    assert not loopback.host_allowed("192.168.1.20:8080")
    assert not loopback.host_allowed("")
    lan = Guard.from_config(WebConfig(host="0.0.0.0", allowed_hosts=["depth.lan"]))
    assert lan.host_allowed("192.168.1.20:8080") and lan.host_allowed("depth.lan")
    assert not lan.host_allowed("evil.example")


def test_the_token_guards_everything_but_health(estimator) -> None:
    token = "s3cret-token"
    cfg = web_cfg(token=token)

    async def body(client, _state):
        denied = await client.get("/api/settings")
        assert denied.status == 401 and denied.headers["WWW-Authenticate"] == "Bearer"
        assert (await client.get("/")).status == 401
        assert (await client.get("/api/settings?token=wrong")).status == 401
        assert (await client.get("/healthz")).status == 200
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/settings", headers=bearer)).status == 200
        page = await client.get(f"/?token={token}")
        assert page.status == 200
        cookie = page.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # The client keeps the cookie, as a browser does: the page's own calls need no token.
        assert (await client.get("/api/settings")).status == 200
        metrics = await (await client.get("/metrics")).text()
        assert token not in metrics

    serve(estimator, body, cfg)


def test_a_server_reachable_from_the_network_without_a_token_warns() -> None:
    assert startup_warning(WebConfig(host="0.0.0.0")) is not None
    assert "token" in startup_warning(WebConfig(host="192.168.1.20"))
    assert startup_warning(WebConfig(host="0.0.0.0", token="t")) is None
    assert startup_warning(WebConfig()) is None


def test_viewers_are_capped_and_unconnected_peers_released(estimator, monkeypatch) -> None:
    """Two places: with two viewers connected a third offer gets 503 with Retry-After.
    Offers whose clients never answer are closed after connect_timeout, which frees the
    file descriptors."""
    loopback_only(monkeypatch)
    cfg = web_cfg(max_viewers=2, connect_timeout=1.0)

    async def body(client, state):
        baseline = open_fds()
        headers = {"Content-Type": "application/sdp"}
        watching = [Viewer() for _ in range(2)]
        for viewer in watching:
            answer = await client.post("/whep", data=await viewer.offer(), headers=headers)
            assert answer.status == 201
            await viewer.accept(await answer.text())
        await _until(lambda: state.peers.connected() == 2, timeout=30)
        third = Viewer()
        full = await client.post("/whep", data=await third.offer(), headers=headers)
        assert full.status == 503 and full.headers["Retry-After"]
        for viewer in watching:
            await viewer.close()
        silent = Viewer()
        answer = await client.post("/whep", data=await silent.offer(), headers=headers)
        assert answer.status == 201  # never accepted: released after connect_timeout
        await _until(lambda: not state.peers.connections, timeout=15)
        for viewer in (third, silent):
            await viewer.close()
        await _until(lambda: open_fds() <= baseline + 2, timeout=30)

    serve(estimator, body, cfg)


def test_offers_are_rate_limited_per_address(estimator) -> None:
    cfg = web_cfg(offer_burst=3, offers_per_minute=1)

    async def body(client, _state):
        statuses = [
            (await client.post("/offer", json={"sdp": "garbage", "type": "offer"})).status
            for _ in range(5)
        ]
        # The burst is spent by bad offers too: a flood of garbage is limited as well.
        assert statuses[:3] == [400, 400, 400] and statuses[3:] == [429, 429]

    serve(estimator, body, cfg)


def test_websocket_clients_are_capped(estimator) -> None:
    cfg = web_cfg(max_websockets=1)

    async def body(client, _state):
        first = await client.ws_connect("/ws/obstacles")
        second = await client.get("/ws/obstacles")
        assert second.status == 503
        await first.close()
        third = await client.ws_connect("/ws/obstacles")
        await third.close()

    serve(estimator, body, cfg)


def test_uploads_beyond_the_slots_are_refused_not_queued(estimator) -> None:
    image = (Path(__file__).parent / "data" / "cases" / "camera").glob("*.png")
    data = next(image).read_bytes()

    async def body(client, _state):
        answers = await asyncio.gather(
            *(client.post("/api/depth?format=json", data=data) for _ in range(4))
        )
        statuses = sorted(a.status for a in answers)
        assert statuses[0] == 200 and statuses[-1] == 503, statuses

    serve(estimator, body, web_cfg(max_uploads=1))


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_serves_https(estimator, tmp_path) -> None:
    cert, key = self_signed(tmp_path)
    cfg = web_cfg(tls_cert=str(cert), tls_key=str(key))
    source = open_source("sample", live_file=True, loop=True)
    pipeline = Pipeline(source, estimator, DepthRenderer(EmaNormalizer(), "gray"), overlay=False)

    async def main() -> None:
        runner = web.AppRunner(create_app(pipeline, cfg))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls_context(cfg.web))
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        trust = ssl.create_default_context(cafile=str(cert))
        trust.check_hostname = False
        try:
            async with aiohttp.ClientSession() as session:
                answer = await session.get(f"https://127.0.0.1:{port}/healthz", ssl=trust)
                assert answer.status == 200
                with pytest.raises(aiohttp.ClientError):
                    await session.get(f"http://127.0.0.1:{port}/healthz")
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_a_broken_certificate_is_a_one_line_error(tmp_path) -> None:
    (tmp_path / "c.pem").write_text("not a certificate")
    with pytest.raises(Exception, match="tls_cert/tls_key cannot be loaded"):
        tls_context(WebConfig(tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "c.pem")))


def test_a_flood_of_offers_is_bounded_and_leaves_nothing_behind(estimator, monkeypatch) -> None:
    """1,200 offers as fast as one client can send them: at most the burst is answered,
    the rest get 429 (or 503 when the viewers are full), nothing answers 500; the peers
    that never connect are released and the fd count returns to its baseline."""
    loopback_only(monkeypatch)
    cfg = web_cfg(connect_timeout=2.0)

    async def body(client, state):
        viewer = Viewer()
        sdp = await viewer.offer()
        await _until(lambda: state.feed().pipeline.status().frames_processed >= 10)
        baseline = open_fds()
        ages_before = list(state.feed().pipeline.stats().frame_age_ms)[-20:]
        headers = {"Content-Type": "application/sdp"}

        async def one() -> int:
            answer = await client.post("/whep", data=sdp, headers=headers)
            await answer.read()
            return answer.status

        statuses = []
        started = time.monotonic()
        for _ in range(12):
            statuses += await asyncio.gather(*(one() for _ in range(100)))
        counts = {s: statuses.count(s) for s in set(statuses)}
        ages_during = list(state.feed().pipeline.stats().frame_age_ms)[-20:]
        print(
            f"flood answers: {counts}; frame age p50 before {np.median(ages_before):.0f} ms, "
            f"just after {np.median(ages_during):.0f} ms"
        )
        assert set(counts) <= {201, 429, 503}
        refilled = (time.monotonic() - started) * cfg.web.offers_per_minute / 60
        assert counts.get(201, 0) <= min(cfg.web.offer_burst + refilled + 1, cfg.web.max_viewers)
        assert len(state.peers.connections) <= cfg.web.max_viewers
        await _until(lambda: not state.peers.connections, timeout=20)
        await viewer.close()
        await _until(lambda: open_fds() <= baseline + 2, timeout=30)
        status = state.feed().pipeline.status()
        assert status.frames_processed > 10 and status.alive

    serve(estimator, body, cfg)


def test_a_flood_from_many_addresses_is_bounded(estimator, monkeypatch) -> None:
    """Twenty loopback addresses (127.0.0.2-21) each send 40 offers at once: extra offers get
    429 or 503 (never 500), the peers held never pass the connecting pool (a newer offer
    pushes out the oldest answered one), the live stream keeps going, and every
    unconnected peer is released."""
    loopback_only(monkeypatch)
    cfg = web_cfg(connect_timeout=2.0)

    async def body(client, state):
        viewer = Viewer()
        sdp = await viewer.offer()
        await _until(lambda: state.feed().pipeline.status().frames_processed >= 10)
        baseline, processed = open_fds(), state.feed().pipeline.status().frames_processed
        url = str(client.make_url("/whep"))
        headers = {"Content-Type": "application/sdp"}

        async def flood(address: str) -> list[int]:
            connector = aiohttp.TCPConnector(local_addr=(address, 0))
            async with aiohttp.ClientSession(connector=connector) as http:

                async def one() -> int:
                    async with http.post(url, data=sdp, headers=headers) as answer:
                        await answer.read()
                        return answer.status

                return list(await asyncio.gather(*(one() for _ in range(40))))

        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, len(state.peers.connections))
                await asyncio.sleep(0.005)

        watcher = asyncio.ensure_future(watch())
        started = time.monotonic()
        floods = await asyncio.gather(*(flood(f"127.0.0.{i}") for i in range(2, 22)))
        elapsed = time.monotonic() - started
        watcher.cancel()
        statuses = [status for answers in floods for status in answers]
        counts = {s: statuses.count(s) for s in set(statuses)}
        print(f"flood from 20 addresses in {elapsed:.1f} s: {counts}, peak peers {peak}")
        assert set(counts) <= {201, 429, 503} and counts.get(429, 0) > 0
        assert peak <= cfg.web.max_viewers + cfg.web.max_connecting
        assert state.peers.connected() <= cfg.web.max_viewers
        await _until(lambda: not state.peers.connections, timeout=20)
        await viewer.close()
        await _until(lambda: open_fds() <= baseline + 2, timeout=30)
        assert state.feed().pipeline.status().frames_processed > processed
        assert not state.feed().pipeline.finished()

    serve(estimator, body, cfg)
