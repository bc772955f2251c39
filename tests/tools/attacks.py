"""Attacks on ``depthstream serve`` from loopback, shared by the tests and by
``scripts/attack``, which runs each against a real server and writes the table of
attacks, what is expected and what was observed into docs/reliability.md."""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from pathlib import Path

import aiohttp
import cv2
import numpy as np
from aiortc import RTCPeerConnection

from tests.tools.serving import start_serve, stop

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
SECTION = "## Attacks"
OPEN_SERVER = "[web]\nice_loopback = true\n"
Row = tuple[str, str, str]


async def raw(port: int, head: bytes, body: bytes = b"", *, read: bool = True) -> int | None:
    """Send ``head`` (and ``body``) over a fresh connection; the answer's status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    await writer.drain()
    status = None
    if read:
        line = await asyncio.wait_for(reader.readline(), 10)
        status = int(line.split()[1])
    writer.close()
    return status


def request_head(method: str, path: str, port: int, *headers: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{port}".encode(), *headers]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


async def aiortc_offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.createDataChannel("records")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def misleading_jpeg(width: int, height: int) -> bytes:
    """A plain ``width`` x ``height`` JPEG with a fill byte before an APP1 segment:
    libjpeg skips the fill and the segment and decodes the full size, while a parser that
    takes the fill byte for a marker jumps into the segment and finds a 16x16 frame
    header planted there."""
    plain = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))[1].tobytes()
    fake_sof = bytes.fromhex("ffc0001108001000100301220002110103110100")
    payload_length = 0xE100 + 0x0100
    payload = bytearray(payload_length - 2)
    # The misreading parser jumps from offset 2 by 2 + (0xE1 << 8 | length's high byte).
    landing = 2 + 2 + (0xE1 << 8 | payload_length >> 8)
    start = landing - 7  # where the payload begins in the file
    payload[start : start + len(fake_sof)] = fake_sof
    app1 = b"\xff\xff\xe1" + payload_length.to_bytes(2, "big") + bytes(payload)
    return plain[:2] + app1 + plain[2:]


async def closed_after(reader: asyncio.StreamReader, limit: float) -> float | None:
    """Seconds until the server closes the connection (None: still open after ``limit``)."""
    start = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(65536), limit - (time.monotonic() - start)):
            pass
    except (TimeoutError, ConnectionError):
        return None if time.monotonic() - start >= limit else time.monotonic() - start
    return time.monotonic() - start


def sdp_with_sections(offer: str, count: int) -> str:
    """``offer`` with its video section repeated ``count`` times."""
    head, *media = offer.split("m=")
    video = "m=" + next(m for m in media if m.startswith("video"))
    return head + "".join(video.replace("a=mid:0", f"a=mid:{i}") for i in range(count))


class Health:
    """The slowest ``/healthz`` answer while it runs."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base, self.slowest = http, base, 0.0
        self._task: asyncio.Task | None = None

    async def _watch(self) -> None:
        while True:
            start = time.monotonic()
            async with self.http.get(f"{self.base}/healthz") as answer:
                await answer.read()
            self.slowest = max(self.slowest, time.monotonic() - start)
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> Health:
        self._task = asyncio.ensure_future(self._watch())
        return self

    async def __aexit__(self, *_exc) -> None:
        self._task.cancel()


async def heavy_requests(http: aiohttp.ClientSession, base: str, offer: str) -> list[Row]:
    sdp = {"Content-Type": "application/sdp"}
    big = cv2.imencode(".png", np.full((5000, 7900, 3), 100, np.uint8))[1].tobytes()
    async with Health(http, base) as health:
        start = time.monotonic()
        async with http.post(f"{base}/whep", data=sdp_with_sections(offer, 1000), headers=sdp) as a:
            bomb = f"{a.status} in {time.monotonic() - start:.2f} s"

        async def upload() -> int:
            png = {"Content-Type": "image/png"}
            async with http.post(f"{base}/api/depth", data=big, headers=png) as answer:
                await answer.read()
                return answer.status

        statuses = list(await asyncio.gather(*(upload() for _ in range(3))))
    return [
        ("WHEP offer with 1,000 media sections", "4xx at once", bomb),
        ("3 uploads of a 39.5 MP PNG at once", "one per slot, 503 for the rest", str(statuses)),
        ("/healthz during both", "under 1 s", f"slowest {health.slowest:.2f} s"),
    ]


async def bad_inputs(http: aiohttp.ClientSession, base: str, offer: str) -> list[Row]:
    jpeg = {"Content-Type": "image/jpeg"}
    async with http.post(f"{base}/api/depth", data=misleading_jpeg(8000, 6000), headers=jpeg) as a:
        bomb = a.status
    try:
        ws = await http.ws_connect(
            f"{base}/ws/obstacles", headers={"Origin": "http://evil.example"}
        )
        cross = "101 (connected)"
        await ws.close()
    except aiohttp.WSServerHandshakeError as exc:
        cross = str(exc.status)
    deep = b"[" * 20_000 + b"]" * 20_000
    nested = []
    for path in ("/offer", "/api/settings", "/api/calibration"):
        async with http.post(
            base + path, data=deep, headers={"Content-Type": "application/json"}
        ) as a:
            nested.append(a.status)
    part = (
        b"--b\r\nContent-Disposition: form-data; name=image; filename*=x\xff''\r\n"
        b"Content-Type: image/png\r\n\r\nxx\r\n--b--\r\n"
    )
    multipart = {"Content-Type": "multipart/form-data; boundary=b"}
    async with http.post(f"{base}/api/depth", data=part, headers=multipart) as a:
        broken = a.status
    no_setup = "".join(f"{line}\r\n" for line in offer.splitlines() if "a=setup" not in line)
    async with http.post(
        f"{base}/whep", data=no_setup, headers={"Content-Type": "application/sdp"}
    ) as a:
        setup = a.status
    return [
        ("JPEG of 8000x6000 whose size only libjpeg reads right", "413", str(bomb)),
        ("WebSocket with another site's Origin", "403", cross),
        ("JSON nested 20,000 deep on /offer, settings, calibration", "400", str(nested)),
        ("multipart part with a broken header", "400", str(broken)),
        ("SDP offer without a=setup", "400", str(setup)),
    ]


async def headers_and_errors(http: aiohttp.ClientSession, base: str) -> list[Row]:
    kinds = []
    for path in ("/", "/static/app.js", "/api/settings", "/static/missing.js"):
        async with http.get(base + path) as a:
            h = a.headers
            present = all(
                k in h
                for k in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options")
            )
            kinds.append(f"{path} {a.status} {'headers' if present else 'NO HEADERS'}"
                         f"{' JSON' if a.content_type == 'application/json' else ''}")  # fmt: skip
    return [("security headers, a missing file", "CSP, nosniff, DENY everywhere; JSON 404",
             "; ".join(kinds))]  # fmt: skip


async def viewer_flood(base: str, offer: str) -> list[Row]:
    sdp = {"Content-Type": "application/sdp"}

    async def flood(address: str) -> list[int]:
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        async with aiohttp.ClientSession(connector=connector) as http:
            statuses = []
            for _ in range(2):
                async with http.post(f"{base}/whep", data=offer, headers=sdp) as answer:
                    statuses.append(answer.status)
            return statuses

    addresses = [f"127.0.{1 + i // 50}.{2 + i % 50}" for i in range(100)]
    await asyncio.gather(*map(flood, addresses))
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/whep", data=offer, headers=sdp) as answer,
    ):
        newcomer = answer.status
    return [("200 offers that never connect, from 100 addresses, then a viewer",
             "the viewer is answered (201)", str(newcomer))]  # fmt: skip


async def slow_clients(port: int) -> list[Row]:
    def connect(address: str):
        return asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))

    silent = [await connect("127.0.0.7") for _ in range(40)]
    dribbler = await connect("127.0.0.8")
    upload = await connect("127.0.0.9")
    upload[1].write(request_head("POST", "/api/depth", port, b"Content-Type: image/png")[:-4]
                    + b"\r\nContent-Length: 100000\r\n\r\n\x89PNG")  # fmt: skip
    start = time.monotonic()

    async def dribble() -> None:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 40:
            dribbler[1].write(bytes([byte]))
            await asyncio.sleep(0.25)

    dribbling = asyncio.ensure_future(dribble())
    *closed, cut = await asyncio.gather(
        *(closed_after(r, 20.0) for r, _ in silent), closed_after(dribbler[0], 20.0)
    )
    dribbling.cancel()
    answer = await asyncio.wait_for(upload[0].readline(), 30)
    stalled = f"{int(answer.split()[1])} after {time.monotonic() - start:.1f} s"
    for _, writer in [*silent, dribbler, upload]:
        writer.close()
    at_once = sum(t is not None and t < 0.5 for t in closed)
    later = sorted(t for t in closed if t is not None and t >= 0.5)
    spread = f"{later[0]:.1f}-{later[-1]:.1f} s" if later else "never"
    return [
        ("40 connections from one address that send nothing", "32 admitted and closed at the "
         "head timeout (10 s), 8 refused", f"{at_once} refused at once, {len(later)} closed "
         f"after {spread}, {closed.count(None)} open after 20 s"),
        ("a client dribbling its request head", "closed at the head timeout (10 s)",
         "never closed" if cut is None else f"closed after {cut:.1f} s"),
        ("an upload whose body stops", "408 after the 10 s grace", stalled),
    ]  # fmt: skip


async def token_attacks(port: int) -> list[Row]:
    statuses = []
    for extra in (None, "Authorization: Bearer \xe9t\xe9", "Cookie: depthstream_token=\xe9t\xe9"):
        path = "/api/settings?token=%C3%A9t%C3%A9" if extra is None else "/api/settings"
        headers = () if extra is None else (extra.encode("latin-1"),)
        statuses.append(await raw(port, request_head("GET", path, port, *headers)))
    return [("a non-ASCII token in the query, a header, a cookie", "401", str(statuses))]


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def run_all() -> list[Row]:
    """Every attack, against a server with the defaults and one with a token."""
    offer = asyncio.run(aiortc_offer())
    with tempfile.TemporaryDirectory(prefix="depthstream-attack-") as work:
        proc, base = start_serve(Path(work), config=OPEN_SERVER)
        try:

            async def everything() -> list[Row]:
                async with aiohttp.ClientSession() as http:
                    rows = await heavy_requests(http, base, offer)
                    rows += await bad_inputs(http, base, offer)
                    rows += await headers_and_errors(http, base)
                port = port_of(base)
                head = request_head(
                    "POST", "/api/depth", port, b"Content-Type: image/png", b"Content-Length: 9999"
                )
                await raw(port, head, b"\x89PNG\r\n\x1a\n" + bytes(5000), read=False)
                rows += await viewer_flood(base, offer)
                return rows + await slow_clients(port)

            rows = asyncio.run(everything())
        finally:
            log = stop(proc)
        left = "left during POST /api/depth" in log and "Traceback" not in log
        rows.append(("a client leaving mid-upload", "an info line, no traceback",
                     "an info line, no traceback" if left else "see the server log"))  # fmt: skip
        proc, base = start_serve(Path(work), config=OPEN_SERVER + 'token = "s3cret"\n')
        try:
            rows += asyncio.run(token_attacks(port_of(base)))
        finally:
            stop(proc)
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| attack | expected | observed |", "|---|---|---|"]
    return "\n".join(lines + [f"| {a} | {e} | {o} |" for a, e, o in rows])


def write_section(text: str) -> None:
    """Replace the attack section of docs/reliability.md (or add it at the end)."""
    doc = DOC.read_text()
    body = (
        f"{SECTION}\n\nWritten by `scripts/attack --write`: each attack against "
        "`depthstream serve sample --weights synthetic` on 127.0.0.1, with the default "
        "limits (and `[web] token` for the token row).\n\n" + text + "\n"
    )
    found = re.search(rf"^{SECTION}\n.*?(?=^## |\Z)", doc, re.M | re.S)
    doc = doc[: found.start()] + body + "\n" + doc[found.end() :] if found else doc + "\n" + body
    DOC.write_text(doc.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/attack", description=__doc__)
    parser.add_argument("--write", action="store_true", help="update docs/reliability.md")
    args = parser.parse_args()
    text = table(run_all())
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
