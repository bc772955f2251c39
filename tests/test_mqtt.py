"""``--mqtt`` against a real broker: Debian's mosquitto, started (and restarted) by the test."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import assert_clean_error, require, run_synthetic
from tests.tools.rtsp import free_port
from tests.tools.serving import health, metrics, start_serve, stop

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    """mosquitto on 127.0.0.1:``port``, without persistence (a restart forgets retained
    messages, so what is retained afterwards was published again)."""

    def __init__(self, work: Path, port: int = 0) -> None:
        self.port = port or free_port()
        self.conf = work / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while True:  # until it accepts a connection
            probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            try:
                probe.connect("127.0.0.1", self.port)
                probe.disconnect()
                return
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    require(Path(MOSQUITTO).exists(), "mosquitto is not installed")
    b = Broker(tmp_path)
    yield b
    b.kill()


class Listener:
    """A subscriber to ``ds/#`` that keeps what arrives: (topic, JSON, retained)."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._keep
        self.client.on_connect = lambda c, *_: c.subscribe("ds/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _keep(self, _client, _userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, json.loads(message.payload), message.retain))

    def on(self, topic: str) -> list[tuple[dict, bool]]:
        with self._lock:
            return [(m, retained) for t, m, retained in self.messages if t == topic]

    def wait_for(self, topic: str, test, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message, retained in self.on(topic):
                if test(message, retained):
                    return message
            time.sleep(0.1)
        raise AssertionError(f"nothing on {topic} as expected; got {self.on(topic)[-3:]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_readings_and_retained_status_arrive_and_survive_a_broker_restart(broker, tmp_path):
    config = "[mqtt]\ninterval = 0.5\n"
    url = f"mqtt://127.0.0.1:{broker.port}/ds"
    proc, base = start_serve(tmp_path, "--mqtt", url, config=config)
    listeners: list[Listener] = []
    try:
        live = Listener(broker.port)
        listeners.append(live)
        reading = live.wait_for("ds/main/obstacles", lambda m, _: True)
        assert reading["camera"] == "main" and len(reading["sectors"]) == 5
        assert {"frame", "capture_time", "calibrated", "nearest"} <= set(reading)
        # Rate-limited to one reading per 0.5 s, however fast the frames come.
        start = len(live.on("ds/main/obstacles"))
        time.sleep(4)
        assert len(live.on("ds/main/obstacles")) - start <= 9
        # A subscriber that comes later gets the status from the broker (retained).
        late = Listener(broker.port)
        listeners.append(late)
        status = late.wait_for("ds/main/status", lambda m, retained: retained)
        assert status == {"camera": "main", "state": "online", "source": "running"}

        broker.kill()
        time.sleep(2)
        assert health(base)["outputs"]["mqtt"]["connected"] is False
        broker.start()
        after = Listener(broker.port)  # the broker forgot everything: this is published anew
        listeners.append(after)
        after.wait_for("ds/main/status", lambda m, _: m["state"] == "online")
        after.wait_for("ds/main/obstacles", lambda m, _: True)
        again = Listener(broker.port)
        listeners.append(again)
        again.wait_for("ds/main/status", lambda m, retained: retained and m["state"] == "online")
        mqtt_status = health(base)["outputs"]["mqtt"]
        assert mqtt_status["connected"] and mqtt_status["reconnects"] == 1
        assert mqtt_status["dropped"] > 0  # readings while the broker was away
    finally:
        err = stop(proc)
    assert "MQTT: lost 127.0.0.1" in err
    # A clean stop says offline, retained.
    after.wait_for("ds/main/status", lambda m, _: m["state"] == "offline")
    final = Listener(broker.port)
    listeners.append(final)
    status = final.wait_for("ds/main/status", lambda m, retained: retained)
    assert status["state"] == "offline"
    for listener in listeners:
        listener.close()


def test_a_broker_that_is_not_there_is_reported_then_joined(tmp_path) -> None:
    """Failed attempts are logged with the broker's address and counted in /healthz and
    /metrics (as the RTSP publisher's are); once the broker comes up the readings arrive."""
    require(Path(MOSQUITTO).exists(), "mosquitto is not installed")
    port = free_port()
    proc, base = start_serve(tmp_path, "--mqtt", f"mqtt://127.0.0.1:{port}/ds")
    try:
        deadline = time.monotonic() + 20
        while health(base)["outputs"]["mqtt"]["failures"] < 2:
            assert time.monotonic() < deadline, health(base)["outputs"]
            time.sleep(0.2)
        status = health(base)["outputs"]["mqtt"]
        assert status["connected"] is False and status["state"] == "connecting"
        assert 'depthstream_output_failures_total{camera="main",output="mqtt"}' in metrics(base)
        (tmp_path / "late").mkdir()
        broker = Broker(tmp_path / "late", port)
        listener = Listener(port)
        try:
            listener.wait_for("ds/main/obstacles", lambda m, _: True, timeout=60)
        finally:
            listener.close()
            broker.kill()
    finally:
        err = stop(proc)
    assert f"MQTT: cannot connect to 127.0.0.1:{port} (attempt 1); retrying" in err
    assert f"MQTT: connected to 127.0.0.1:{port}" in err


def test_the_last_will_marks_a_killed_process_offline(broker, tmp_path) -> None:
    url = f"mqtt://127.0.0.1:{broker.port}/ds"
    proc, _ = start_serve(tmp_path, "--mqtt", url)
    listener = Listener(broker.port)
    try:
        listener.wait_for("ds/main/status", lambda m, _: m["state"] == "online")
        proc.kill()  # no goodbye: the broker publishes the will
        proc.communicate(timeout=30)
        status = listener.wait_for("ds/main/status", lambda m, _: m["state"] == "offline")
        assert status == {"camera": "main", "state": "offline", "source": None}
    finally:
        proc.kill()
        listener.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://broker/ds", "give mqtt://"),
        ("mqtt://broker:notaport/ds", "give mqtt://"),
        ("mqtt://broker", "topic prefix"),
        ("mqtt://broker/ds/#", "topic prefix"),
    ],
)
def test_a_bad_mqtt_url_is_a_one_line_error(tmp_path: Path, url: str, message: str) -> None:
    proc = run_synthetic("run", "sample", "--display", "none", "--mqtt", url, cwd=tmp_path)
    assert message in assert_clean_error(proc)
