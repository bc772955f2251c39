"""Obstacle readings and a camera's status to an MQTT broker, with paho-mqtt.

``PREFIX/CAMERA/obstacles``: the reading as JSON, at most every ``[mqtt]
interval`` seconds (QoS 0: a stale reading is worth less than the next one).
``PREFIX/CAMERA/status``: ``{"camera", "state", "source"}``, retained, QoS 1,
sent on every (re)connection and whenever the source's state changes; the
broker's last will for the connection says ``offline`` when the process dies.
paho's own network thread reconnects with backoff; nothing here blocks the
pipeline (readings while the broker is away are dropped and counted).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from depthstream.stream.config import MqttConfig
from depthstream.stream.errors import UserError
from depthstream.stream.pipeline import Result

log = logging.getLogger("depthstream")
ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    prefix: str
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt[s]://[user:pass@]HOST[:PORT]/PREFIX``, or a one-line error."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        prefix = parts.path.strip("/")
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port == -1:
            raise UserError("--mqtt: give mqtt://[user:pass@]HOST[:PORT]/PREFIX")
        if not prefix or "+" in prefix or "#" in url or parts.query:
            raise UserError("--mqtt: the URL's path is the topic prefix, without + or #")
        tls = parts.scheme == "mqtts"
        return cls(
            parts.hostname,
            port or (8883 if tls else 1883),
            prefix,
            tls,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )


class MqttPublisher:
    """Sink: one camera's readings and status to the broker at ``url``.

    ``source_state``: the camera's state now (running, reconnecting, ended),
    polled once a second by the ``mqtt-status`` thread.
    """

    name = "mqtt"

    def __init__(
        self, url: str, camera: str, source_state: Callable[[], str], cfg: MqttConfig
    ) -> None:
        self.address = BrokerAddress.parse(url)
        self.camera = camera
        base = f"{self.address.prefix}/{camera}"
        self.status_topic, self.obstacles_topic = f"{base}/status", f"{base}/obstacles"
        self._source_state = source_state
        self._interval = cfg.interval
        self._lock = threading.Lock()
        self._connected = False
        self._connections = 0
        self._failures = 0
        self._sent = 0
        self._dropped = 0
        self._last_sent = 0.0
        self._announced: str | None = None
        self._stopped = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"depthstream-{camera}-{os.getpid()}"
        )
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set()
        client.will_set(self.status_topic, self._status(OFFLINE), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        client.connect_async(self.address.host, self.address.port, keepalive=cfg.keepalive)
        client.loop_start()
        self._watch = threading.Thread(target=self._watch_source, name="mqtt-status", daemon=True)
        self._watch.start()

    def _status(self, state: str) -> str:
        source = self._source_state() if state == ONLINE else None
        return json.dumps({"camera": self.camera, "state": state, "source": source})

    def _on_connect(self, client, _userdata, _flags, reason, _properties) -> None:
        if reason.is_failure:
            with self._lock:
                self._failures += 1
            log.warning("MQTT: broker %s refused: %s; retrying", self._where, reason)
            return
        with self._lock:
            self._connected = True
            self._connections += 1
            self._announced = None  # the status goes out again on every connection
        log.info("MQTT: connected to %s", self._where)
        self._announce()

    def _on_connect_fail(self, _client, _userdata) -> None:
        """No connection to the broker (not there, unreachable): said each time, like the RTSP
        publisher's retries; paho tries again with backoff."""
        with self._lock:
            self._failures += 1
            failures = self._failures
        log.warning("MQTT: cannot connect to %s (attempt %d); retrying", self._where, failures)

    @property
    def _where(self) -> str:
        return f"{self.address.host}:{self.address.port}"

    def _on_disconnect(self, _client, _userdata, _flags, reason, _properties) -> None:
        with self._lock:
            was, self._connected = self._connected, False
        if was and not self._stopped.is_set():
            log.warning("MQTT: lost %s (%s); reconnecting", self._where, reason)

    def _announce(self) -> None:
        """Publish the status when the source's state differs from what was last said."""
        state = self._source_state()
        with self._lock:
            if not self._connected or state == self._announced:
                return
            self._announced = state
        self._client.publish(self.status_topic, self._status(ONLINE), qos=1, retain=True)

    def _watch_source(self) -> None:
        while not self._stopped.wait(1.0):
            self._announce()

    def write(self, result: Result) -> None:
        reading = result.obstacles
        now = time.monotonic()
        if reading is None or now - self._last_sent < self._interval:
            return
        self._last_sent = now
        with self._lock:
            connected = self._connected
        if not connected:
            with self._lock:
                self._dropped += 1
            return
        payload = json.dumps({"camera": self.camera, **reading.to_dict()})
        self._client.publish(self.obstacles_topic, payload, qos=0)
        with self._lock:
            self._sent += 1

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "state": "connected" if self._connected else "connecting",
                "connected": self._connected,
                "sent": self._sent,
                "dropped": self._dropped,
                "reconnects": max(self._connections - 1, 0),
                "failures": self._failures,
            }

    def close(self) -> None:
        """Say ``offline`` (retained) and disconnect, waiting at most a few seconds."""
        self._stopped.set()
        self._watch.join()
        with self._lock:
            connected = self._connected
        if connected:
            info = self._client.publish(
                self.status_topic, self._status(OFFLINE), qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=3)
        self._client.disconnect()
        self._client.loop_stop()
