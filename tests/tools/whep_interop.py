"""``depthstream serve`` watched by GStreamer's webrtcbin over WHEP, inside the caller's
network namespace (run it under ``unshare -n``).

libnice gathers no loopback candidates, so the namespace gets a veth pair with test
addresses (198.18.0.1 and .2, RFC 2544's benchmarking range) and the server binds
198.18.0.1; nothing can leave the namespace.  Prints one JSON object: what the viewer
decoded and how the server ended.
Usage: whep_interop.py WORKDIR
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from depthstream.stream.bench.pipeline_bench import wait_healthy

ROOT = Path(__file__).resolve().parents[2]
HOST, PORT, TOKEN = "198.18.0.1", 8766, "interop-token"
VIEWER = ROOT / "tests" / "tools" / "gst_whep_viewer.py"


def network() -> None:
    for command in (
        "link set lo up",
        "link add ds0 type veth peer name ds1",
        f"addr add {HOST}/24 dev ds0",
        "addr add 198.18.0.2/24 dev ds1",
        "link set ds0 up",
        "link set ds1 up",
    ):
        subprocess.run(["ip", *command.split()], check=True)


def main() -> None:
    work = Path(sys.argv[1])
    network()
    config = work / "interop.toml"
    config.write_text(f'[web]\nhost = "{HOST}"\nport = {PORT}\ntoken = "{TOKEN}"\n')
    args = ["serve", "sample", "--config", str(config), "--weights", "synthetic"]
    with (work / "server.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "depthstream", *args], stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://{HOST}:{PORT}"
    try:
        wait_healthy(base, server, 300)
        if server.poll() is not None:
            raise SystemExit("the server did not come up")
        viewer = subprocess.run(
            ["/usr/bin/python3", str(VIEWER), f"{base}/whep", TOKEN, "12"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines = viewer.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {"errors": [viewer.stderr[-2000:]]}
    finally:
        server.terminate()
        result_code = server.wait(60)
    print(json.dumps({"viewer": result, "server_exit": result_code}))


if __name__ == "__main__":
    main()
