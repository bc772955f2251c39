// depthstream viewer: pulls the depth feed over WebRTC (WHEP), reads per-frame
// records from a data channel, and reconnects on its own when the link drops.
"use strict";

const $ = (id) => document.getElementById(id);
const video = $("video");
// Read by the end-to-end tests, and handy in the console.
const stats = (window.depthstream = { records: 0, last: null, latencies: [], connects: 0 });
let pc = null;
let resource = null;
let retry = null;

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").className = "status " + (kind || "");
}

function onRecord(record) {
  stats.records += 1;
  stats.last = record;
  $("fps").textContent = record.fps.toFixed(1);
  $("inference").textContent = record.inference_ms.toFixed(0) + " ms";
  const delay = record.source_delay_ms ? " + " + record.source_delay_ms.toFixed(0) + " ms source" : "";
  $("age").textContent = record.age_ms.toFixed(0) + " ms" + delay;
  $("range").textContent =
    record.near === null ? "–" : record.near.toFixed(1) + " / " + record.far.toFixed(1);
  if (record.obstacles) showSectors(record.obstacles);
  if (record.source === "reconnecting") setStatus("camera lost, reconnecting…", "warn");
  else if (pc && pc.connectionState === "connected") setStatus("live", "live");
}

function showSectors(reading) {
  $("sectors").replaceChildren(
    ...reading.sectors.map((s) => {
      const cell = document.createElement("div");
      cell.textContent =
        s.metres === null || !isFinite(s.metres)
          ? Math.round(s.nearness * 100) + "% near"
          : s.metres.toFixed(2) + " m";
      if (s.warning) cell.className = "warn";
      return cell;
    }),
  );
}

// Calibration: clicks on the video become pixel positions in the camera frame.
const points = [];

function showPoints() {
  $("points").replaceChildren(
    ...points.map(([x, y, m]) => {
      const item = document.createElement("li");
      item.textContent = `(${x.toFixed(0)}, ${y.toFixed(0)}) at ${m} m`;
      return item;
    }),
  );
  $("fit").disabled = points.length < 2;
}

video.addEventListener("click", (e) => {
  if (!video.videoWidth) return;
  const box = video.getBoundingClientRect();
  let x = ((e.clientX - box.left) * video.videoWidth) / box.width;
  const y = ((e.clientY - box.top) * video.videoHeight) / box.height;
  if ($("sidebyside").checked) x %= video.videoWidth / 2;
  const metres = parseFloat(prompt("Distance to this point, in metres:") || "");
  if (!(metres > 0)) return;
  points.push([x, y, metres]);
  showPoints();
});

$("clear").onclick = () => {
  points.length = 0;
  showPoints();
};

$("fit").onclick = async () => {
  const response = await fetch("/api/calibration", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ points }),
  });
  const answer = await response.json();
  $("calibration").textContent = response.ok
    ? `fitted on ${answer.used} points, rms error ${answer.rms_error_m.toFixed(2)} m` +
      (answer.saved_to ? `, saved to ${answer.saved_to}` : "")
    : "calibration failed: " + answer.error;
};

function onVideoFrame() {
  // The newest record belongs to the newest frame sent; both clocks are the host's.
  if (stats.last) {
    const latency = Date.now() - stats.last.capture_time * 1000;
    stats.latencies.push(latency);
    if (stats.latencies.length > 300) stats.latencies.shift();
    $("latency").textContent = latency.toFixed(0) + " ms";
  }
  video.requestVideoFrameCallback(onVideoFrame);
}

function gathered(peer) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") resolve();
    });
  });
}

function scheduleReconnect(reason) {
  setStatus(reason + ", reconnecting…", "down");
  if (retry) return;
  retry = setTimeout(() => {
    retry = null;
    connect();
  }, 2000);
}

async function hangUp() {
  if (pc) pc.close();
  pc = null;
  if (resource) fetch(resource, { method: "DELETE", keepalive: true }).catch(() => {});
  resource = null;
}

async function connect() {
  await hangUp();
  setStatus("connecting…");
  const peer = (pc = stats.peer = new RTCPeerConnection({ iceServers: [] }));
  peer.addTransceiver("video", { direction: "recvonly" });
  peer.createDataChannel("frames").onmessage = (e) => onRecord(JSON.parse(e.data));
  peer.ontrack = (e) => {
    video.srcObject = e.streams[0] || new MediaStream([e.track]);
  };
  peer.onconnectionstatechange = () => {
    if (peer !== pc) return;
    if (peer.connectionState === "connected") {
      stats.connects += 1;
      setStatus("live", "live");
    } else if (["failed", "disconnected", "closed"].includes(peer.connectionState)) {
      scheduleReconnect("connection lost");
    }
  };
  try {
    await peer.setLocalDescription(await peer.createOffer());
    await gathered(peer);
    const response = await fetch("/whep", {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: peer.localDescription.sdp,
    });
    if (response.status !== 201) throw new Error("server answered " + response.status);
    resource = response.headers.get("Location");
    await peer.setRemoteDescription({ type: "answer", sdp: await response.text() });
  } catch (err) {
    scheduleReconnect("cannot reach the server (" + err.message + ")");
  }
}

async function loadSettings() {
  const settings = await (await fetch("/api/settings")).json();
  const select = $("colormap");
  select.replaceChildren(...settings.colormaps.map((name) => new Option(name, name)));
  select.value = settings.colormap;
  $("sidebyside").checked = settings.layout === "side-by-side";
  $("freeze").checked = settings.freeze;
}

function postSettings(change) {
  fetch("/api/settings", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(change),
  });
}

$("colormap").onchange = (e) => postSettings({ colormap: e.target.value });
$("sidebyside").onchange = (e) =>
  postSettings({ layout: e.target.checked ? "side-by-side" : "depth" });
$("freeze").onchange = (e) => postSettings({ freeze: e.target.checked });
window.addEventListener("pagehide", hangUp);
video.requestVideoFrameCallback(onVideoFrame);
loadSettings().catch(() => {});
connect();
