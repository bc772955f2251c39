"""A 3-minute soak (``scripts/soak``): a real ``serve`` on a real RTSP camera that is
killed and restarted every minute, aiortc viewers joining and leaving, REST uploads.

No timing is asserted; the hour-long run's figures are in docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT, require
from tests.tools.rtsp import gst_available


def test_three_minutes_of_dropping_camera_and_churning_viewers_leak_nothing(tmp_path) -> None:
    require(
        gst_available(),
        "GStreamer RTSP server (python3-gst-1.0, gir1.2-gst-rtsp-server-1.0) is not installed",
    )
    out = tmp_path / "soak.json"
    soak = [sys.executable, "-m", "tests.tools.soak", "--minutes", "3", "--weights", "synthetic"]
    proc = subprocess.run(
        [*soak, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout)
    r = json.loads(out.read_text())
    start, end = r["start"], r["end"]
    assert r["server_exit"] == 0
    assert r["http_5xx"] == 0 and r["tracebacks_logged"] == 0
    assert r["viewer_errors"] == []
    assert r["camera_restarts"] >= 2 and r["reconnects"] >= 2
    assert r["viewer_sessions"] >= 6 and r["uploads"] >= 30
    assert all(m["frames_seen"] > 0 for m in r["per_minute"])
    # The start is measured after a warm-up that did everything once (the libraries' pools
    # grow on first use); a leak per viewer session (over six) or per camera restart (two)
    # would still show.
    assert end["threads"] <= start["threads"] + 1
    assert end["fds"] <= start["fds"] + 1
    assert end["rss_mb"] - start["rss_mb"] < 100
