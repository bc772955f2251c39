"""The distribution as a user gets it: a wheel built from this checkout, installed (not
editable) into fresh environments, one per extra, and on Python 3.12 and 3.13 the smoke
set: install with extras, ``--version``, ``image``, an offline ``run`` with MCAP, ``serve``
answering ``/healthz``.  Each command runs from a folder of the user's own, where a
``capture.py``, ``stream.py`` and ``web.py`` of theirs must not get in the way."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import DATA, ROOT, require
from tests.tools.rtsp import free_port
from tests.tools.serving import wait_healthy

LAYERS = ("capture", "stream", "web")
IMAGE = DATA / "cases" / "camera" / "camera.png"


def interpreter(version: str) -> str | None:
    """A working ``python3.X``: on PATH, else one pyenv installed."""
    home = Path.home() / ".pyenv" / "versions"
    found = sorted(glob.glob(str(home / f"{version}.*" / "bin" / f"python{version}")))
    for candidate in [shutil.which(f"python{version}"), *found]:
        if candidate and subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of what the distribution is made of, so nothing lands in the
    checkout (setuptools writes build/ and egg-info beside the sources)."""
    uv = shutil.which("uv")
    require(uv is not None, "uv is not installed")
    src = tmp_path_factory.mktemp("src")
    for name in (*LAYERS, "pyproject.toml", "README.md"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    run([uv, "build", "--wheel", "--quiet", "--out-dir", str(out), str(src)])
    (built,) = out.glob("depthstream-*.whl")
    return built


def run(args: list[str], cwd: Path | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[:4]}: {proc.stderr[-2000:]}"
    return proc.stderr


class Env:
    """A fresh virtual environment with the wheel and ``extras`` installed, and a user's
    folder to run it in (with modules named like the layers, as a user's project may have)."""

    def __init__(self, root: Path, wheel: Path, version: str, extras: str) -> None:
        python = interpreter(version)
        require(python is not None, f"Python {version} is not installed")
        uv = shutil.which("uv") or "uv"
        run([uv, "venv", "--quiet", "--python", str(python), str(root / "venv")])
        self.bin = root / "venv" / "bin"
        spec = f"depthstream{f'[{extras}]' if extras else ''} @ {wheel.as_uri()}"
        run([uv, "pip", "install", "--quiet", "--python", str(self.bin / "python"), spec])
        self.work = root / "work"
        self.work.mkdir()
        for layer in LAYERS:
            (self.work / f"{layer}.py").write_text("raise SystemExit('the user module ran')\n")
        self.env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache"), "PYTHONPATH": ""}
        self.env.pop("DEPTHSTREAM_CONFIG", None)

    def depthstream(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.bin / "depthstream"), *args], cwd=self.work, env=self.env,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if check:
            assert proc.returncode == 0, proc.stderr[-2000:]
        return proc

    def python(self, code: str) -> str:
        proc = subprocess.run(
            [str(self.bin / "python"), "-c", code], cwd=self.work, env=self.env,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    def site_packages(self) -> Path:
        code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        return Path(self.python(code).strip())


def record_mcap(env: Env) -> set[str]:
    """An offline run recorded as MCAP; the topics the file holds."""
    env.depthstream(
        "run", "sample", "--weights", "synthetic", "--display", "none", "--frames", "4",
        "--record-mcap", "out.mcap",
    )  # fmt: skip
    code = (
        "from mcap.reader import make_reader\n"
        "with open('out.mcap', 'rb') as f:\n"
        "    print(sorted({c.topic for _, c, _ in make_reader(f).iter_messages()}))"
    )
    return set(json.loads(env.python(code).replace("'", '"')))


def test_the_base_install_is_one_namespace_and_names_the_extras_it_lacks(tmp_path, wheel):
    env = Env(tmp_path, wheel, "3.11", "")
    site = env.site_packages()
    assert not [layer for layer in LAYERS if (site / layer).exists()]
    assert all((site / "depthstream" / layer / "__init__.py").is_file() for layer in LAYERS)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert env.depthstream("--version").stdout.strip() == f"depthstream {version}"
    assert env.python("import depthstream; print(depthstream.__version__)").strip() == version
    out = env.python("from depthstream import open_depth, obstacle_readings; print('ok')")
    assert out.strip() == "ok"
    args = ("run", "sample", "--weights", "synthetic", "--display", "none")
    robot = env.depthstream(*args, "--record-mcap", "o.mcap", check=False)
    assert robot.returncode == 2 and "pip install 'depthstream[robot]'" in robot.stderr
    runtimes = env.depthstream(*args, "--backend", "openvino", check=False)
    assert runtimes.returncode == 2 and "pip install 'depthstream[runtimes]'" in runtimes.stderr


def test_the_robot_extra_brings_what_mcap_and_foxglove_import(tmp_path, wheel) -> None:
    env = Env(tmp_path, wheel, "3.11", "robot")
    topics = record_mcap(env)
    assert {"/camera/image/compressed", "/camera/inverse_depth/image", "/tf_static"} <= topics
    port = free_port()
    proc = env.depthstream(
        "run", "sample", "--weights", "synthetic", "--display", "none", "--frames", "4",
        "--foxglove", str(port),
    )  # fmt: skip
    assert f"Foxglove: open ws://127.0.0.1:{port}" in proc.stderr


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_runtimes_extra_runs_each_backend(tmp_path, wheel, backend: str) -> None:
    env = Env(tmp_path, wheel, "3.11", "runtimes")
    env.depthstream(
        "run", "sample", "--weights", "synthetic", "--display", "none", "--frames", "4",
        "--mode", "offline", "--backend", backend, "--precision", "int8-decoder",
        "--stats-json", "stats.json",
    )  # fmt: skip
    assert json.loads((env.work / "stats.json").read_text())["frames_processed"] == 4


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_the_smoke_set_on_newer_pythons(tmp_path, wheel, version: str) -> None:
    env = Env(tmp_path, wheel, version, "robot,runtimes")
    assert env.python("import sys; print(sys.version_info[:2])").strip() == str(
        tuple(int(v) for v in version.split("."))
    )
    assert env.depthstream("--version").stdout.startswith("depthstream ")
    env.depthstream("image", str(IMAGE), "--weights", "synthetic", "--out", "heat.png")
    assert (env.work / "heat.png").stat().st_size > 0
    assert "/camera/image/compressed" in record_mcap(env)
    port = free_port()
    serve = subprocess.Popen(
        [str(env.bin / "depthstream"), "serve", "sample", "--weights", "synthetic",
         "--port", str(port)],
        cwd=env.work, env=env.env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, serve)
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as answer:
            assert answer.status == 200 and json.load(answer)["frames_processed"] > 0
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err[-2000:]
