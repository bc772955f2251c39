"""Players and cameras nobody here wrote: GStreamer's webrtcbin over WHEP (the engine of
``whepsrc``), an HLS live playlist and an MJPEG camera made by FFmpeg."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.conftest import ROOT, require

SYSTEM_PYTHON = "/usr/bin/python3"
WEBRTCBIN_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0');"
    "from gi.repository import Gst; Gst.init(None);"
    "assert Gst.ElementFactory.find('webrtcbin') and Gst.ElementFactory.find('nicesrc')"
)


def webrtcbin_available() -> bool:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", WEBRTCBIN_PROBE], capture_output=True, check=False)
    return probe.returncode == 0


def test_a_gstreamer_webrtcbin_whep_viewer_decodes_depth(tmp_path) -> None:
    """Without the DTLS-server answer this viewer's handshake fails ("no shared cipher")."""
    for tool in ("unshare", "ip"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    require(os.geteuid() == 0, "a network namespace needs root")
    require(
        webrtcbin_available(),
        "GStreamer webrtcbin (gir1.2-gst-plugins-bad-1.0, gstreamer1.0-nice) is not installed",
    )
    proc = subprocess.run(
        [
            "unshare",
            "-n",
            "--",
            sys.executable,
            str(ROOT / "tests/tools/whep_interop.py"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    log = (tmp_path / "server.log").read_text() if (tmp_path / "server.log").exists() else ""
    assert proc.returncode == 0, proc.stderr[-3000:] + log[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    viewer = out["viewer"]
    assert viewer["errors"] == [] and viewer["status"] == 201, viewer
    assert viewer["connection"] == "connected"
    assert viewer["frames"] > 25 and (viewer["width"], viewer["height"]) == (640, 272)
    assert out["server_exit"] == 0
