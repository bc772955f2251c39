"""A soak run of ``depthstream serve``: does it hold for an hour?

``serve`` watches a looping RTSP camera (GStreamer's RTSP server) that is
killed and restarted every ``--restart-every`` seconds; ``--viewers`` aiortc
viewers join and leave (``/offer`` and WHEP in turn), and a client uploads an
image to ``/api/depth`` every few seconds, all with an access token.  The
server's RSS, fds and threads come from ``/proc``; frame ages from the viewers'
data channels; reconnects from ``/metrics``.  The report is JSON (``--json``)
and Markdown on stdout.  The clock starts after a warm-up (one viewer, one
upload); start and end figures are taken with no viewer connected and the
camera up, so they compare.  SIGINT/SIGTERM end the soak early with a report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import cv2
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from depthstream.capture.sample import SAMPLE_PATH
from depthstream.web.loopback import use_loopback_candidates
from tests.tools.rtsp import RtspServer, free_port, loop_clip

TOKEN = "soak-token"
SAMPLE_EVERY = 5.0
UPLOAD_EVERY = 3.0
FORMATS = ("png", "json", "npy")


def upload_image() -> bytes:
    """The sample clip's first frame as a JPEG, what a REST client would send."""
    with av.open(str(SAMPLE_PATH)) as src:
        frame = next(src.decode(video=0)).to_ndarray(format="bgr24")
    return cv2.imencode(".jpg", frame)[1].tobytes()


@dataclass
class Sample:
    """One look at the server process."""

    t: float
    rss_mb: float
    fds: int
    threads: int
    viewers: int
    reconnects: int


@dataclass
class Soak:
    """What the run saw; ``ages``: capture time -> (seconds into the soak, frame age ms)."""

    samples: list[Sample] = field(default_factory=list)
    ages: dict[float, tuple[float, float]] = field(default_factory=dict)
    http: Counter = field(default_factory=Counter)
    viewer_sessions: int = 0
    viewer_errors: list[str] = field(default_factory=list)
    uploads: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered)
    camera_restarts: int = 0
    refusals: int = 0
    flood: dict[str, Any] | None = None


def proc_stats(pid: int) -> tuple[float, int, int]:
    """(RSS MB, open fds, threads) of a process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    values = dict(line.split(":", 1) for line in status)
    rss_kb = int(values["VmRSS"].split()[0])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd")), int(values["Threads"])


class Run:
    """The server, the camera and the clients of one soak."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.camera = RtspServer(
            loop_clip(work / "loop.mp4", min(args.minutes * 60, args.restart_every or 1e9) + 60),
            free_port(),
        )
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {TOKEN}"}
        self.soak = Soak()
        self.started = 0.0
        self.stopping = asyncio.Event()
        self.image = upload_image()
        self.server: subprocess.Popen | None = None

    def now(self) -> float:
        return time.monotonic() - self.started

    def spawn_server(self) -> None:
        config = self.work / "soak.toml"
        config.write_text(
            f'[web]\nhost = "127.0.0.1"\nport = {self.port}\nice_loopback = true\n'
            f'token = "{TOKEN}"\n'
        )
        args = [
            sys.executable,
            "-m",
            "depthstream",
            "serve",
            self.camera.url,
            "--config",
            str(config),
        ]
        if self.args.weights:
            args += ["--weights", self.args.weights]
        with (self.work / "server.log").open("w") as log:
            self.server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    async def request(self, http: aiohttp.ClientSession, method: str, path: str, **kw) -> Any:
        """One request; its status is counted, its body returned (JSON when it is JSON)."""
        headers = {**self.headers, **kw.pop("headers", {})}
        async with http.request(method, self.base + path, headers=headers, **kw) as resp:
            self.soak.http[resp.status] += 1
            body = await resp.read()
            if resp.content_type == "application/json":
                return resp.status, json.loads(body), resp.headers
            return resp.status, body, resp.headers

    async def health(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        return (await self.request(http, "GET", "/healthz"))[1]

    async def until(self, http: aiohttp.ClientSession, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check(await self.health(http)):
                    return
            except (aiohttp.ClientError, json.JSONDecodeError):
                pass
            if self.server.poll() is not None:
                raise RuntimeError(f"the server exited ({self.server.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError("timed out waiting for the server")
            await asyncio.sleep(0.5)

    async def sample(self, http: aiohttp.ClientSession) -> Sample:
        rss, fds, threads = proc_stats(self.server.pid)
        _status, text, _ = await self.request(http, "GET", "/metrics")
        reconnects = next(
            int(float(line.split()[1]))
            for line in text.decode().splitlines()
            if line.startswith('depthstream_reconnects_total{camera="main"} ')
        )
        health = await self.health(http)
        return Sample(
            round(self.now(), 1), round(rss, 1), fds, threads, health["viewers"], reconnects
        )

    async def viewer_session(self, http: aiohttp.ClientSession, whep: bool, stay: float) -> None:
        """Join, watch for ``stay`` seconds (or until the soak ends), leave."""
        self.soak.viewer_sessions += 1
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        location = None
        try:
            pc.addTransceiver("video", direction="recvonly")
            channel = pc.createDataChannel("frames")
            channel.on("message", lambda m: self.record_age(json.loads(m)))
            track: asyncio.Future = asyncio.get_running_loop().create_future()
            pc.on("track", lambda t: track.done() or track.set_result(t))
            await pc.setLocalDescription(await pc.createOffer())
            sdp = pc.localDescription.sdp
            for _ in range(10):  # refused (rate, viewers full): retry when told, as a player does
                if whep:
                    status, answer, headers = await self.request(
                        http, "POST", "/whep", data=sdp, headers={"Content-Type": "application/sdp"}
                    )
                    location = headers.get("Location")
                    answer = {"sdp": answer.decode(), "type": "answer"} if status == 201 else answer
                else:
                    status, answer, headers = await self.request(
                        http, "POST", "/offer", json={"sdp": sdp, "type": "offer"}
                    )
                if status not in (429, 503):
                    break
                self.soak.refusals += 1
                await asyncio.sleep(float(headers.get("Retry-After", 2)))
            if status not in (200, 201):
                raise RuntimeError(f"offer answered {status}: {answer}")
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            video = await asyncio.wait_for(track, 30)
            leave = time.monotonic() + stay
            frames = 0
            while time.monotonic() < leave and not self.stopping.is_set():
                await asyncio.wait_for(video.recv(), 30)
                frames += 1
            if frames == 0:
                raise RuntimeError("no video frame")
        except Exception as exc:  # a viewer's failure is a finding, not the soak's end
            self.soak.viewer_errors.append(f"{self.now():.0f} s: {type(exc).__name__}: {exc}")
        finally:
            if location:
                await self.request(http, "DELETE", location)
            await pc.close()

    def record_age(self, record: dict[str, Any]) -> None:
        self.soak.ages.setdefault(record["capture_time"], (self.now(), record["age_ms"]))

    async def viewer(self, http: aiohttp.ClientSession, index: int) -> None:
        """Viewer ``index``: sessions of 20-40 s with 5 s gaps, staggered from the others."""
        await asyncio.sleep(index * 7)
        turn = 0
        while not self.stopping.is_set():
            await self.viewer_session(
                http, whep=(index + turn) % 2 == 1, stay=20 + 10 * ((index + turn) % 3)
            )
            turn += 1
            await self.pause(5)

    async def uploader(self, http: aiohttp.ClientSession) -> None:
        turn = 0
        while not self.stopping.is_set():
            form = aiohttp.FormData()
            form.add_field("image", self.image, filename="frame.jpg", content_type="image/jpeg")
            began = self.now()
            await self.request(http, "POST", f"/api/depth?format={FORMATS[turn % 3]}", data=form)
            self.soak.uploads.append((began, self.now()))
            turn += 1
            await self.pause(UPLOAD_EVERY)

    async def warm_up(self, http: aiohttp.ClientSession) -> None:
        """Everything the soak does, once: the libraries' pools (executor workers, decoder
        and encoder threads) grow on first use, so the start is measured after it."""
        viewers = [
            asyncio.create_task(self.viewer_session(http, whep=whep, stay=8))
            for whep in (False, True)
        ]
        for fmt in FORMATS:
            form = aiohttp.FormData()
            form.add_field("image", self.image, filename="frame.jpg", content_type="image/jpeg")
            status, body, _ = await self.request(
                http, "POST", f"/api/depth?format={fmt}", data=form
            )
            if status != 200:
                raise RuntimeError(f"warm-up upload ({fmt}) answered {status}: {body!r}")
        await asyncio.gather(*viewers)
        if self.soak.viewer_errors:
            raise RuntimeError(f"warm-up viewers failed: {self.soak.viewer_errors}")
        if self.args.restart_every:
            reconnects = (await self.sample(http)).reconnects
            await asyncio.to_thread(self.camera.stop)
            await asyncio.to_thread(self.camera.start)
            deadline = time.monotonic() + 60
            while (await self.sample(http)).reconnects == reconnects:
                if time.monotonic() > deadline:
                    raise RuntimeError("warm-up: the server did not reconnect to the camera")
                await asyncio.sleep(0.5)
        self.soak.viewer_sessions = 0

    async def restarter(self) -> None:
        while self.args.restart_every and not self.stopping.is_set():
            await self.pause(self.args.restart_every)
            if self.stopping.is_set():
                break
            await asyncio.to_thread(self.camera.stop)
            await asyncio.to_thread(self.camera.start)
            self.soak.camera_restarts += 1

    async def sampler(self, http: aiohttp.ClientSession) -> None:
        while not self.stopping.is_set():
            self.soak.samples.append(await self.sample(http))
            await self.pause(SAMPLE_EVERY)

    async def flood(self) -> None:
        """At ``--flood-at`` s, 1,200 offers as fast as one client sends them, from another
        address (127.0.0.2): the stream's frame age and the server's fds before and after."""
        await self.pause(self.args.flood_at)
        if self.stopping.is_set():
            return
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        fds_before = proc_stats(self.server.pid)[1]
        answers: Counter = Counter()
        began = self.now()
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), limit=100)
        async with aiohttp.ClientSession(connector=connector, headers=self.headers) as http:

            async def one() -> None:
                async with http.post(
                    f"{self.base}/whep", data=sdp, headers={"Content-Type": "application/sdp"}
                ) as resp:
                    await resp.read()
                    answers[resp.status] += 1

            for _ in range(12):
                await asyncio.gather(*(one() for _ in range(100)))
        ended = self.now()
        await pc.close()
        fds_after = [proc_stats(self.server.pid)[1]]
        while len(fds_after) < 60 and not self.stopping.is_set():
            await asyncio.sleep(1)
            fds_after.append(proc_stats(self.server.pid)[1])
        ages = np.array(list(self.soak.ages.values())).reshape(-1, 2)

        def p95(low: float, high: float) -> float | None:
            inside = ages[(ages[:, 0] >= low) & (ages[:, 0] < high), 1]
            return round(float(np.percentile(inside, 95)), 1) if inside.size else None

        self.soak.flood = {
            "at_s": round(began, 1),
            "seconds": round(ended - began, 1),
            "answers": {str(k): v for k, v in sorted(answers.items())},
            "age_p95_ms_before": p95(began - 30, began),
            "age_p95_ms_during": p95(began, ended + 5),
            "fds_before": fds_before,
            "fds_peak": max(fds_after),
            "fds_back_after_s": next(
                (i for i, n in enumerate(fds_after) if n <= fds_before + 2), None
            ),
        }

    async def pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def settle(self, http: aiohttp.ClientSession) -> Sample:
        """Camera up, no viewer, a few seconds' rest: a look comparable to the start's."""
        await self.until(http, lambda h: h["source"] == "running" and h["viewers"] == 0, 60)
        await asyncio.sleep(5)
        return await self.sample(http)

    async def main(self) -> dict[str, Any]:
        use_loopback_candidates()
        for sig in (signal.SIGINT, signal.SIGTERM):  # end early, still clean up and report
            asyncio.get_running_loop().add_signal_handler(sig, self.stopping.set)
        self.camera.start()
        self.spawn_server()
        self.started = time.monotonic()
        try:
            async with aiohttp.ClientSession() as http:
                await self.until(http, lambda h: h["frames_processed"] > 0, 300)
                first = await self.sample(http)
                await self.warm_up(http)
                start = await self.settle(http)
                self.started = time.monotonic()
                self.soak.ages.clear()
                tasks = [
                    asyncio.create_task(self.viewer(http, i)) for i in range(self.args.viewers)
                ]
                tasks += [
                    asyncio.create_task(self.uploader(http)),
                    asyncio.create_task(self.restarter()),
                    asyncio.create_task(self.sampler(http)),
                ]
                if self.args.flood_at:
                    tasks.append(asyncio.create_task(self.flood()))
                await self.pause(self.args.minutes * 60)
                self.stopping.set()
                await asyncio.gather(*tasks)
                end = await self.settle(http)
        finally:
            self.camera.stop()
            exit_code = self.stop_server()
        return report(self.soak, first, start, end, exit_code, self.args, self.work / "server.log")

    def stop_server(self) -> int | None:
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(60)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
                return None
        return self.server.returncode


def _slope(samples: list[Sample]) -> float | None:
    """RSS growth in MB per minute over the samples (least squares)."""
    if len(samples) < 3:
        return None
    t = np.array([s.t for s in samples]) / 60
    return round(float(np.polyfit(t, [s.rss_mb for s in samples], 1)[0]), 2)


def _per_minute(soak: Soak) -> list[dict[str, Any]]:
    rows = []
    ages = np.array(list(soak.ages.values())).reshape(-1, 2)
    for minute in range(int(max([s.t for s in soak.samples], default=0) // 60) + 1):
        inside = ages[(ages[:, 0] >= minute * 60) & (ages[:, 0] < minute * 60 + 60), 1]
        looks = [s for s in soak.samples if minute * 60 <= s.t < minute * 60 + 60]
        if not looks:
            continue
        rows.append(
            {
                "minute": minute + 1,
                "frames_seen": int(inside.size),
                "age_p50_ms": round(float(np.percentile(inside, 50)), 1) if inside.size else None,
                "age_p95_ms": round(float(np.percentile(inside, 95)), 1) if inside.size else None,
                "rss_mb": looks[-1].rss_mb,
                "fds_max": max(s.fds for s in looks),
                "threads_max": max(s.threads for s in looks),
                "viewers_max": max(s.viewers for s in looks),
                "reconnects": looks[-1].reconnects,
            }
        )
    return rows


def _near_uploads(soak: Soak) -> dict[str, float | None]:
    """Frame age p95 of frames seen while an upload was inferred (or just after), and of
    the rest: how much an upload stalls the live stream."""
    ages = np.array(list(soak.ages.values())).reshape(-1, 2)
    near = np.zeros(len(ages), bool)
    for sent, answered in soak.uploads:
        near |= (ages[:, 0] >= sent) & (ages[:, 0] <= answered + 0.5)

    def p95(values: np.ndarray) -> float | None:
        return round(float(np.percentile(values, 95)), 1) if values.size else None

    return {"near": p95(ages[near, 1]), "otherwise": p95(ages[~near, 1])}


def report(
    soak: Soak,
    first: Sample,
    start: Sample,
    end: Sample,
    exit_code: int | None,
    args: argparse.Namespace,
    log: Path,
) -> dict[str, Any]:
    half = [s for s in soak.samples if s.t >= soak.samples[-1].t / 2] if soak.samples else []
    logged = log.read_text(errors="replace")
    return {
        "minutes": round(end.t / 60, 1),
        "restart_every_s": args.restart_every,
        "viewers": args.viewers,
        "first": asdict(first),
        "start": asdict(start),
        "end": asdict(end),
        "rss_slope_mb_per_min": _slope(soak.samples),
        "rss_slope_second_half_mb_per_min": _slope(half),
        "rss_max_mb": max((s.rss_mb for s in soak.samples), default=None),
        "fds_max": max((s.fds for s in soak.samples), default=None),
        "threads_max": max((s.threads for s in soak.samples), default=None),
        "per_minute": _per_minute(soak),
        "camera_restarts": soak.camera_restarts,
        "reconnects": end.reconnects - start.reconnects,
        "viewer_sessions": soak.viewer_sessions,
        "viewer_errors": soak.viewer_errors,
        "refusals_retried": soak.refusals,
        "flood": soak.flood,
        "uploads": len(soak.uploads),
        "age_p95_ms_near_uploads": _near_uploads(soak),
        "http": {str(k): v for k, v in sorted(soak.http.items())},
        "http_5xx": sum(v for k, v in soak.http.items() if k >= 500),
        "tracebacks_logged": logged.count("Traceback"),
        "server_exit": exit_code,
    }


def markdown(r: dict[str, Any]) -> str:
    """The report as the tables of docs/reliability.md."""
    s, e = r["start"], r["end"]
    lines = [
        f"{r['minutes']} min, camera killed and restarted every {r['restart_every_s']} s, "
        f"{r['viewers']} viewers joining and leaving, an upload every {UPLOAD_EVERY:.0f} s.",
        "",
        "| | start | end |",
        "|---|---|---|",
        f"| RSS (MB) | {s['rss_mb']} | {e['rss_mb']} |",
        f"| open fds | {s['fds']} | {e['fds']} |",
        f"| threads | {s['threads']} | {e['threads']} |",
        "",
        f"- RSS slope: {r['rss_slope_mb_per_min']} MB/min over the run, "
        f"{r['rss_slope_second_half_mb_per_min']} MB/min over its second half; "
        f"max {r['rss_max_mb']} MB (first look, before any viewer: {r['first']['rss_mb']} MB)",
        f"- fds max {r['fds_max']}, threads max {r['threads_max']}",
        f"- camera restarts {r['camera_restarts']}, reconnects {r['reconnects']}",
        f"- viewer sessions {r['viewer_sessions']}, viewer errors {len(r['viewer_errors'])}, "
        f"offers refused and retried {r['refusals_retried']}",
        f"- frame age p95 around uploads {r['age_p95_ms_near_uploads']['near']} ms, "
        f"otherwise {r['age_p95_ms_near_uploads']['otherwise']} ms",
        f"- uploads {r['uploads']}; HTTP answers {r['http']}; 5xx {r['http_5xx']}; "
        f"tracebacks in the server log {r['tracebacks_logged']}; server exit {r['server_exit']}",
    ]
    if f := r["flood"]:
        lines.append(
            f"- flood at {f['at_s']} s: 1,200 WHEP offers in {f['seconds']} s from 127.0.0.2, "
            f"answers {f['answers']}; frame age p95 {f['age_p95_ms_before']} ms in the 30 s "
            f"before, {f['age_p95_ms_during']} ms during; fds {f['fds_before']} before, "
            f"peak {f['fds_peak']}, back within 2 after {f['fds_back_after_s']} s"
        )
    lines += [
        "",
        "| minute | frames seen | age p50 (ms) | age p95 (ms) | RSS (MB) | fds max "
        "| threads max | viewers max | reconnects |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {m['minute']} | {m['frames_seen']} | {m['age_p50_ms']} | {m['age_p95_ms']} "
        f"| {m['rss_mb']} | {m['fds_max']} | {m['threads_max']} | {m['viewers_max']} "
        f"| {m['reconnects']} |"
        for m in r["per_minute"]
    ]
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0, help="length of the soak")
    p.add_argument(
        "--restart-every", type=float, default=60.0, help="camera kill/restart period, s (0: never)"
    )
    p.add_argument("--viewers", type=int, default=3, help="viewers joining and leaving")
    p.add_argument(
        "--weights", help="passed to serve (e.g. 'synthetic' where the real ones are absent)"
    )
    p.add_argument(
        "--flood-at", type=float, default=0.0, help="flood /whep with 1,200 offers at this second"
    )
    p.add_argument("--json", type=Path, help="write the report here as JSON")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="depthstream-soak-") as tmp:
        result = asyncio.run(Run(args, Path(tmp)).main())
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    sys.stdout.write(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
