"""``depthstream serve`` as a subprocess on 127.0.0.1 for the tests, and its HTTP read-outs."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

from depthstream.stream.bench.pipeline_bench import wait_healthy
from tests.conftest import cli_command
from tests.tools.rtsp import free_port


def start_serve(
    work: Path, *args: str, config: str = "", source: str | None = "sample"
) -> tuple[subprocess.Popen, str]:
    """``serve SOURCE ARGS`` (no SOURCE: ARGS name the cameras) with the synthetic weights and
    ``config`` written to c.toml, once it has processed a frame; returns the process
    (stderr piped) and its base URL."""
    (work / "c.toml").write_text(config)
    port = free_port()
    proc = subprocess.Popen(
        cli_command(
            "serve", *([source] if source else []), "--config", "c.toml", "--weights", "synthetic",
            "--port", str(port), *args,
        ),
        cwd=work, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, proc)
    if proc.poll() is not None:
        raise AssertionError(proc.communicate()[1])
    return proc, base


def stop(proc: subprocess.Popen) -> str:
    """SIGTERM, wait, and return stderr; the exit must be clean."""
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def health(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
        return json.load(resp)


def metrics(base: str) -> str:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        return resp.read().decode()


def frames_processed(base: str, camera: str = "main") -> int:
    pattern = rf'^depthstream_frames_processed_total{{camera="{camera}"}} (\d+)'
    found = re.search(pattern, metrics(base), re.M)
    assert found is not None
    return int(found.group(1))
