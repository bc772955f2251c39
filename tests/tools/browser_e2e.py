"""End-to-end: ``depthstream serve`` and headless Chromium, inside the caller's
loopback-only network namespace (run it under ``unshare -n``).

Prints one JSON object with what it measured; the pytest test asserts on it.
Usage: browser_e2e.py WORKDIR
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

ROOT = Path(__file__).resolve().parents[2]
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"

GET_STATS = """
const done = arguments[arguments.length - 1];
const peer = window.depthstream && window.depthstream.peer;
if (!peer) { done(null); return; }
peer.getStats().then((report) => {
  let video = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      video = {framesDecoded: s.framesDecoded || 0, width: s.frameWidth, height: s.frameHeight};
    }
  });
  done(video);
});
"""

READ_BACK = """
const v = document.getElementById("video");
const c = document.createElement("canvas");
c.width = v.videoWidth; c.height = v.videoHeight;
const g = c.getContext("2d");
g.drawImage(v, 0, 0);
const d = g.getImageData(0, 0, c.width, c.height).data;
let warm = 0, dark = 0;
for (let i = 0; i < d.length; i += 4) {
  if (d[i] - d[i + 2] > 40 && d[i] > 80) warm++;
  if (d[i] + d[i + 1] + d[i + 2] < 30) dark++;
}
return {width: c.width, height: c.height, warm: warm / (d.length / 4), dark: dark / (d.length / 4)};
"""


def wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(what)


def metrics() -> dict[str, float]:
    text = urllib.request.urlopen(f"{BASE}/metrics", timeout=5).read().decode()
    pattern = r'^(\w+)\{camera="main"\} (\S+)$'  # the one camera's series
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text, re.M)}


def browser(profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-sync",
        "--disable-component-update",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_script_timeout(20)
    driver.get(f"{BASE}/")
    return driver


def decoded(driver: webdriver.Chrome) -> int:
    stats = driver.execute_async_script(GET_STATS)
    return stats["framesDecoded"] if stats else 0


def start_server(work: Path, *sources: str) -> subprocess.Popen:
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    command = [
        sys.executable,
        str(ROOT / "tests/tools/serve_loopback.py"),
        "serve",
        *(sources or ("sample",)),
        "--weights",
        "synthetic",
        "--port",
        str(PORT),
        "--threads",
        "1",
    ]
    with open(work / "server.log", "a") as log:
        server = subprocess.Popen(command, cwd=work, env=env, stderr=log)
    wait(_healthy, 120, "server health")
    return server


def main() -> None:
    work = Path(sys.argv[1])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = start_server(work)
    out: dict = {}
    drivers: list[webdriver.Chrome] = []
    try:
        first = browser(Path(tempfile.mkdtemp(dir=work)))
        drivers.append(first)
        wait(lambda: decoded(first) > 10, 90, "first browser decoding")
        d1 = decoded(first)
        time.sleep(2)
        out["decoded_growth"] = decoded(first) - d1
        out["stats"] = first.execute_async_script(GET_STATS)
        out["readback"] = first.execute_script(READ_BACK)
        out["records"] = first.execute_script("return window.depthstream.records")
        out["last_record"] = first.execute_script("return window.depthstream.last")
        second = browser(Path(tempfile.mkdtemp(dir=work)))
        drivers.append(second)
        wait(lambda: decoded(second) > 10, 90, "second browser decoding")
        before = [decoded(first), decoded(second)]
        m0 = metrics()
        time.sleep(3)
        m1 = metrics()
        out["both_growth"] = [decoded(first) - before[0], decoded(second) - before[1]]
        out["processed_delta"] = (
            m1["depthstream_frames_processed_total"] - m0["depthstream_frames_processed_total"]
        )
        out["captured_delta"] = (
            m1["depthstream_frames_captured_total"] - m0["depthstream_frames_captured_total"]
        )
        out["viewers_two"] = m1["depthstream_viewers"]
        latencies = first.execute_script("return window.depthstream.latencies")
        out["latency_ms"] = sorted(latencies)[len(latencies) // 2] if latencies else None
        second.quit()
        drivers.remove(second)
        out["viewers_after_close"] = wait(
            lambda: metrics()["depthstream_viewers"] == 1 and 1, 60, "peer released"
        )
        status = "return document.getElementById('status').textContent"
        out["status_text"] = first.execute_script(status)
        server.terminate()
        server.wait(30)
        out["status_when_down"] = wait(
            lambda: "reconnecting" in (t := first.execute_script(status)) and t,
            60,
            "page noticed the drop",
        )
        server = start_server(work)
        wait(
            lambda: first.execute_script("return window.depthstream.connects") >= 2,
            90,
            "page reconnected",
        )
        d2 = decoded(first)
        time.sleep(2)
        out["decoded_after_reconnect"] = decoded(first) - d2
        out["page"] = try_the_page(first)
        first.quit()
        drivers.remove(first)
        server.terminate()
        server.wait(30)
        server = start_server(work, "--camera", "door=sample", "--camera", "yard=sample")
        third = browser(Path(tempfile.mkdtemp(dir=work)))
        drivers.append(third)
        out["cameras"] = try_the_cameras(third)
    finally:
        out["csp_violations"] = [
            entry["message"]
            for driver in drivers
            for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"]
        ]
        for driver in drivers:
            driver.quit()
        server.terminate()
        out["server_exit"] = server.wait(30)
    print(json.dumps(out))


def try_the_page(driver: webdriver.Chrome) -> dict:
    """What a viewer does besides watching: the legend, a smaller window, a snapshot, full
    screen."""
    js = driver.execute_script
    out = {
        "legend_width": wait(
            lambda: js("return document.getElementById('legend').naturalWidth"), 20, "legend"
        ),
        "legend_labels": js(
            "return [document.getElementById('legend-far').textContent,"
            " document.getElementById('legend-near').textContent]"
        ),
    }
    driver.set_window_size(700, 600)
    time.sleep(0.5)
    out["video_fits"] = js(
        "const b = document.getElementById('video').getBoundingClientRect();"
        "return b.width > 0 && b.right <= window.innerWidth && b.height < window.innerHeight;"
    )
    driver.find_element(By.ID, "snapshot").click()
    out["snapshot"] = wait(lambda: js("return window.depthstream.snapshot"), 10, "snapshot")
    out["snapshot"]["url"] = out["snapshot"]["url"][:22]
    driver.find_element(By.ID, "fullscreen").click()
    out["fullscreen"] = wait(
        lambda: js("return document.fullscreenElement && document.fullscreenElement.id"),
        10,
        "full screen",
    )
    return out


def try_the_cameras(driver: webdriver.Chrome) -> dict:
    """Two cameras: the picker, switching, and the grid of both."""
    js = driver.execute_script
    wait(lambda: decoded(driver) > 10, 90, "the first camera decoding")
    out = {
        "options": js("return [...document.getElementById('camera').options].map(o => o.value)"),
        "picker_shown": js("return !document.getElementById('picker').hidden"),
        "first": js("return window.depthstream.last && window.depthstream.last.camera"),
    }
    Select(driver.find_element(By.ID, "camera")).select_by_value("yard")
    out["switched"] = wait(
        lambda: (
            js("return window.depthstream.last && window.depthstream.last.camera") == "yard"
            and "yard"
        ),
        30,
        "records of the second camera",
    )
    wait(lambda: decoded(driver) > 10, 60, "the second camera decoding")
    driver.find_element(By.ID, "gridtoggle").click()
    out["tiles"] = wait(
        lambda: (
            (frames := js("return [...window.depthstream.tiles.values()].map(t => t.frames)"))
            and min(frames) > 5
            and frames
        ),
        60,
        "both tiles playing",
    )
    out["tile_videos"] = js(
        "return [...document.querySelectorAll('#grid video')].map(v => v.videoWidth)"
    )
    return out


def _healthy() -> bool:
    try:
        return urllib.request.urlopen(f"{BASE}/healthz", timeout=2).status == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
