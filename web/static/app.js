// depthstream viewer: pulls each camera's depth over WebRTC (WHEP), reads per-frame
// records from a data channel, and reconnects on its own when the link drops.
"use strict";

const $ = (id) => document.getElementById(id);
const video = $("video");
// Read by the end-to-end tests, and handy in the console.
const stats = (window.depthstream = {
  records: 0, last: null, latencies: [], connects: 0, camera: null, snapshot: null,
});
let cameras = [];
let main = null;
const tiles = new Map();
Object.defineProperty(stats, "peer", { get: () => main && main.pc });

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").className = "status " + (kind || "");
}

function gathered(peer) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") resolve();
    });
  });
}

// One WHEP session for one camera into one <video>, started again when it drops.
class Feed {
  constructor(camera, element, onRecord, onStatus) {
    Object.assign(this, { camera, element, onRecord, onStatus });
    this.pc = null;
    this.resource = null;
    this.retry = null;
    this.stopped = false;
  }

  async start() {
    await this.hangUp();
    if (this.stopped) return;
    this.onStatus("connecting…");
    const peer = (this.pc = new RTCPeerConnection({ iceServers: [] }));
    peer.addTransceiver("video", { direction: "recvonly" });
    peer.createDataChannel("frames").onmessage = (e) => this.onRecord(JSON.parse(e.data));
    peer.ontrack = (e) => {
      this.element.srcObject = e.streams[0] || new MediaStream([e.track]);
    };
    peer.onconnectionstatechange = () => {
      if (peer !== this.pc) return;
      if (peer.connectionState === "connected") this.onStatus("live", "live", true);
      else if (["failed", "disconnected", "closed"].includes(peer.connectionState)) {
        this.later("connection lost, reconnecting…");
      }
    };
    try {
      await peer.setLocalDescription(await peer.createOffer());
      await gathered(peer);
      const response = await fetch("/whep/" + encodeURIComponent(this.camera), {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: peer.localDescription.sdp,
      });
      if (response.status === 503) {
        const wait = Number(response.headers.get("Retry-After")) || 5;
        this.later(`server full, retrying in ${wait} s…`, wait);
        return;
      }
      if (response.status !== 201) throw new Error("server answered " + response.status);
      this.resource = response.headers.get("Location");
      await peer.setRemoteDescription({ type: "answer", sdp: await response.text() });
    } catch (err) {
      this.later("cannot reach the server (" + err.message + "), reconnecting…");
    }
  }

  later(message, seconds = 2) {
    if (this.stopped) return;
    this.onStatus(message, "down");
    if (this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.start();
    }, seconds * 1000);
  }

  async hangUp() {
    if (this.pc) this.pc.close();
    this.pc = null;
    if (this.resource) fetch(this.resource, { method: "DELETE", keepalive: true }).catch(() => {});
    this.resource = null;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    this.hangUp();
  }
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
  showLegend(record);
  if (record.obstacles) showSectors(record.obstacles);
  if (record.source === "reconnecting") setStatus("camera lost, reconnecting…", "warn");
  else if (main && main.pc && main.pc.connectionState === "connected") setStatus("live", "live");
}

// The colour scale's ends: metres when the camera is calibrated, else "near" and "far".
function showLegend(record) {
  const m = (v) => (v === null || v === undefined ? null : v.toFixed(v < 10 ? 2 : 1) + " m");
  $("legend-near").textContent = m(record.near_m) ? "near " + m(record.near_m) : "near";
  $("legend-far").textContent = m(record.far_m) ? "far " + m(record.far_m) : "far";
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

const query = () => "?camera=" + encodeURIComponent(stats.camera);

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
  // The picture keeps its shape inside the element (object-fit: contain).
  const box = video.getBoundingClientRect();
  const scale = Math.min(box.width / video.videoWidth, box.height / video.videoHeight);
  const left = box.left + (box.width - video.videoWidth * scale) / 2;
  const top = box.top + (box.height - video.videoHeight * scale) / 2;
  let x = (e.clientX - left) / scale;
  const y = (e.clientY - top) / scale;
  if (x < 0 || y < 0 || x >= video.videoWidth || y >= video.videoHeight) return;
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
    body: JSON.stringify({ points, camera: stats.camera }),
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

// Snapshot: the picture as shown, saved as a PNG named after the camera and the time.
$("snapshot").onclick = () => {
  if (!video.videoWidth) return;
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  const url = canvas.toDataURL("image/png");
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const link = Object.assign(document.createElement("a"), {
    href: url,
    download: `depthstream-${stats.camera}-${stamp}.png`,
  });
  link.click();
  stats.snapshot = { width: canvas.width, height: canvas.height, name: link.download, url };
};

$("fullscreen").onclick = () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else $("view").requestFullscreen().catch(() => {});
};

async function loadSettings() {
  const settings = await (await fetch("/api/settings" + query())).json();
  const select = $("colormap");
  select.replaceChildren(...settings.colormaps.map((name) => new Option(name, name)));
  select.value = settings.colormap;
  $("sidebyside").checked = settings.layout === "side-by-side";
  $("freeze").checked = settings.freeze;
  $("legend").src = "/api/legend?colormap=" + encodeURIComponent(settings.colormap);
}

async function postSettings(change) {
  await fetch("/api/settings" + query(), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(change),
  });
  loadSettings().catch(() => {});
}

$("colormap").onchange = (e) => postSettings({ colormap: e.target.value });
$("sidebyside").onchange = (e) =>
  postSettings({ layout: e.target.checked ? "side-by-side" : "depth" });
$("freeze").onchange = (e) => postSettings({ freeze: e.target.checked });

function watch(camera) {
  if (main) main.stop();
  stats.camera = camera;
  stats.last = null;
  $("camera").value = camera;
  history.replaceState(null, "", query());
  points.length = 0;
  showPoints();
  main = new Feed(camera, video, onRecord, (text, kind, connected) => {
    if (connected) stats.connects += 1;
    setStatus(text, kind);
  });
  main.start();
  loadSettings().catch(() => {});
}

// The grid: every camera at once, each its own session; a click opens it in the main view.
function showGrid(on) {
  $("grid").hidden = !on;
  $("gridtoggle").textContent = on ? "One camera" : "All cameras";
  for (const tile of tiles.values()) tile.feed.stop();
  tiles.clear();
  $("grid").replaceChildren();
  if (!on) return;
  for (const camera of cameras) {
    const figure = document.createElement("figure");
    figure.className = "tile";
    const element = Object.assign(document.createElement("video"), {
      autoplay: true, muted: true, playsInline: true,
    });
    const caption = document.createElement("figcaption");
    const name = Object.assign(document.createElement("span"), { textContent: camera.name });
    const state = Object.assign(document.createElement("span"), { textContent: "connecting…" });
    caption.append(name, state);
    figure.append(element, caption);
    figure.onclick = () => watch(camera.name);
    $("grid").append(figure);
    const tile = { frames: 0, state };
    tile.feed = new Feed(
      camera.name,
      element,
      (record) => {
        tile.frames += 1;
        const lost = record.source === "reconnecting";
        state.textContent = lost ? "reconnecting…" : record.fps.toFixed(1) + " fps";
        state.className = lost ? "warn" : "";
      },
      (text, kind) => {
        state.textContent = text;
        state.className = kind === "live" ? "" : "warn";
      },
    );
    tile.feed.start();
    tiles.set(camera.name, tile);
  }
  stats.tiles = tiles;
}

$("gridtoggle").onclick = () => showGrid($("grid").hidden);
$("camera").onchange = (e) => watch(e.target.value);

// The picker says which cameras are reconnecting, refreshed every few seconds.
async function loadCameras() {
  cameras = await (await fetch("/api/cameras")).json();
  const select = $("camera");
  const chosen = select.value;
  select.replaceChildren(
    ...cameras.map((c) => {
      const label = c.source === "running" ? c.name : `${c.name} (${c.source})`;
      return new Option(label, c.name);
    }),
  );
  if (chosen) select.value = chosen;
  $("picker").hidden = $("gridtoggle").hidden = cameras.length < 2;
  stats.cameras = cameras;
}

window.addEventListener("pagehide", () => {
  if (main) main.stop();
  showGrid(false);
});
video.requestVideoFrameCallback(onVideoFrame);
loadCameras()
  .then(() => {
    const wanted = new URLSearchParams(location.search).get("camera");
    const names = cameras.map((c) => c.name);
    watch(names.includes(wanted) ? wanted : names[0]);
    setInterval(() => loadCameras().catch(() => {}), 3000);
  })
  .catch(() => setStatus("cannot reach the server", "down"));
