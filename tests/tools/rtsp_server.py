"""A real RTSP server for the tests: GStreamer's, serving an H.264 MP4 on 127.0.0.1.

Runs under the system python3 (Debian's python3-gst-1.0 and
gir1.2-gst-rtsp-server-1.0), not the project's virtual environment.
Usage: rtsp_server.py CLIP.mp4 PORT  -> serves rtsp://127.0.0.1:PORT/live and
prints "ready" once it listens.  Each client gets its own pipeline from the
clip's start; at the clip's end the stream ends, as a camera that drops would.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    clip, port = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{clip}" ! qtdemux ! h264parse '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
