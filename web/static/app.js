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
  $("age").textContent = record.age_ms.toFixed(0) + " ms";
  $("range").textContent =
    record.near === null ? "–" : record.near.toFixed(1) + " / " + record.far.toFixed(1);
  if (record.source === "reconnecting") setStatus("camera lost, reconnecting…", "warn");
  else if (pc && pc.connectionState === "connected") setStatus("live", "live");
}

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
