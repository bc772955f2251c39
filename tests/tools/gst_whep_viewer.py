"""A WHEP viewer built on GStreamer's webrtcbin, the engine of ``whepsrc``, for the interop test.

Runs under the system python3 (Debian's python3-gst-1.0, gir1.2-gst-plugins-bad-1.0 and
gstreamer1.0-nice), not the project's environment.  It offers receive-only VP8 once ICE
gathering is complete (WHEP without trickle), POSTs the offer with a Bearer token, applies
the answer and decodes for SECONDS.
Usage: gst_whep_viewer.py URL TOKEN SECONDS -> one JSON line:
``{"frames", "width", "height", "connection", "errors"}``.
"""

import json
import sys
import threading
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VP8 = "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000"
DECODE = "rtpvp8depay ! vp8dec ! videoconvert ! fakesink name=sink signal-handoffs=true sync=false"


class Viewer:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.result = {"frames": 0, "width": None, "height": None, "errors": []}
        self.pipeline = Gst.Pipeline.new("viewer")
        self.rtc = Gst.ElementFactory.make("webrtcbin", "rtc")
        self.rtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.pipeline.add(self.rtc)
        direction = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
        self.rtc.emit("add-transceiver", direction, Gst.Caps.from_string(VP8))
        self.rtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.rtc.connect("pad-added", self.on_pad)
        self.offered = False
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)

    def on_error(self, _bus, message) -> None:
        error, debug = message.parse_error()
        self.result["errors"].append(f"{error.message} ({debug})")

    def create_offer(self) -> bool:
        """Called once the pipeline plays: webrtcbin cannot offer before that."""
        promise = Gst.Promise.new_with_change_func(self.on_offer, None)
        self.rtc.emit("create-offer", None, promise)
        return False

    def on_offer(self, promise, _data) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        if offer is None:
            self.result["errors"].append(f"no offer: {reply.to_string()}")
            return
        self.rtc.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering(self, rtc, _spec) -> None:
        complete = GstWebRTC.WebRTCICEGatheringState.COMPLETE
        if rtc.get_property("ice-gathering-state") == complete and not self.offered:
            self.offered = True
            sdp = rtc.get_property("local-description").sdp.as_text()
            threading.Thread(target=self.post, args=(sdp,), daemon=True).start()

    def post(self, sdp: str) -> None:
        request = urllib.request.Request(
            self.url,
            data=sdp.encode(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                self.result["status"] = resp.status
                answer = resp.read().decode()
        except OSError as exc:
            self.result["errors"].append(f"WHEP POST failed: {exc}")
            return
        GLib.idle_add(self.answer, answer)

    def answer(self, text: str) -> bool:
        _, message = GstSdp.SDPMessage.new_from_text(text)
        kind = GstWebRTC.WebRTCSDPType.ANSWER
        description = GstWebRTC.WebRTCSessionDescription.new(kind, message)
        self.rtc.emit("set-remote-description", description, Gst.Promise.new())
        return False

    def on_pad(self, _rtc, pad) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        decode = Gst.parse_bin_from_description(DECODE, True)
        self.pipeline.add(decode)
        decode.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))
        decode.get_by_name("sink").connect("handoff", self.on_frame)

    def on_frame(self, _sink, _buffer, pad) -> None:
        self.result["frames"] += 1
        if self.result["width"] is None:
            caps = pad.get_current_caps().get_structure(0)
            self.result["width"] = caps.get_value("width")
            self.result["height"] = caps.get_value("height")


def main() -> None:
    url, token, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    Gst.init(None)
    viewer = Viewer(url, token)
    loop = GLib.MainLoop()
    viewer.pipeline.set_state(Gst.State.PLAYING)
    GLib.idle_add(viewer.create_offer)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()
    state = viewer.rtc.get_property("connection-state")
    viewer.result["connection"] = state.value_nick
    viewer.pipeline.set_state(Gst.State.NULL)
    print(json.dumps(viewer.result), flush=True)


if __name__ == "__main__":
    main()
