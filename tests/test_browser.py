"""End to end in a real browser: headless Chromium (Selenium + chromedriver) and
``depthstream serve`` together in a loopback-only network namespace, playing the
bundled real clip.  The work happens in ``tests/tools/browser_e2e.py``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, require


def test_browsers_play_live_depth(tmp_path, capsys: pytest.CaptureFixture) -> None:
    for tool in ("unshare", "ip", "chromium", "chromedriver"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    require(os.geteuid() == 0, "a network namespace needs root")
    proc = subprocess.run(
        [
            "unshare",
            "-n",
            "--",
            sys.executable,
            str(ROOT / "tests/tools/browser_e2e.py"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    log = (tmp_path / "server.log").read_text() if (tmp_path / "server.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + log[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # framesDecoded from RTCPeerConnection.getStats() keeps growing, at the clip's size.
    assert out["decoded_growth"] > 5
    assert (out["stats"]["width"], out["stats"]["height"]) == (640, 272)
    # A canvas read-back of the <video> shows heat-map colours, not black.
    assert out["readback"]["warm"] > 0.2 and out["readback"]["dark"] < 0.5
    # Data-channel records arrive with the per-frame figures.
    assert out["records"] > 5
    assert {"frame", "capture_time", "fps", "inference_ms", "age_ms", "near", "far"} <= set(
        out["last_record"]
    )
    # Two browsers both receive frames while inference runs once per captured frame.
    assert min(out["both_growth"]) > 5 and out["viewers_two"] == 2
    assert out["processed_delta"] <= out["captured_delta"]
    # Closing a browser frees its peer connection.
    assert out["viewers_after_close"] == 1
    # The page says when the server is gone and reconnects on its own.
    assert "reconnecting" in out["status_when_down"]
    assert out["decoded_after_reconnect"] > 5
    assert out["server_exit"] == 0
    assert out["csp_violations"] == []  # the page runs under its Content-Security-Policy
    # The page: a colour legend, video that fits a smaller window, a snapshot, full screen.
    page = out["page"]
    assert page["legend_width"] == 256 and page["legend_labels"] == ["far", "near"]
    assert page["video_fits"]
    assert (page["snapshot"]["width"], page["snapshot"]["height"]) == (640, 272)
    assert page["snapshot"]["url"].startswith("data:image/png")
    assert page["snapshot"]["name"].startswith("depthstream-main-")
    assert page["fullscreen"] == "view"
    # Two cameras: a picker, switching between them, and a grid playing both.
    cams = out["cameras"]
    assert cams["options"] == ["door", "yard"] and cams["picker_shown"]
    assert cams["first"] == "door" and cams["switched"] == "yard"
    assert min(cams["tiles"]) > 5 and cams["tile_videos"] == [640, 640]
    with capsys.disabled():
        print(
            f"\n[browser e2e] capture -> decoded-in-page latency, median: "
            f"{out['latency_ms']} ms; both viewers +{out['both_growth']} frames in 3 s "
            f"while the server processed {out['processed_delta']:.0f}"
        )
