"""Shared fixtures.

Model-dependent tests use the deterministic synthetic weights of the shared
parity recipe (the official weights cannot be downloaded here).  The trace cache
lives in one temporary XDG cache for the whole session so each shape is traced
once.  Tests that need ``../shared`` skip without it, but fail under ``CI=true``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).with_name("data")
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when a dependency is missing, except in CI, where that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared() -> Path:
    require(SHARED.is_dir(), f"{SHARED} (the shared data folder) is missing")
    return SHARED


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep downloads and traces out of the user's real cache; uv keeps its own package
    cache, so the install tests link what the setup already fetched instead of
    downloading (and storing) torch again per run."""
    real = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ.setdefault("UV_CACHE_DIR", str(real / "uv"))
    cache = tmp_path_factory.mktemp("xdg-cache")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    os.environ.pop("DEPTHSTREAM_WEIGHTS", None)
    os.environ.pop("DEPTHSTREAM_CONFIG", None)
    return cache


@pytest.fixture(scope="session")
def synthetic_model():
    from depthstream.stream.model.locate import WeightsChoice
    from depthstream.stream.model.weights import load_model

    return load_model(WeightsChoice(None, "tests"))


@pytest.fixture(scope="session")
def estimator(synthetic_model, isolated_cache):
    """The default path: the TorchScript runtime in fp32."""
    from depthstream.stream.estimator import DepthEstimator
    from depthstream.stream.model.handle import WeightsHandle
    from depthstream.stream.runtimes.registry import open_runtime

    handle = WeightsHandle.of_loaded(synthetic_model)
    return DepthEstimator(open_runtime("torch", "fp32", handle, isolated_cache / "depthstream"))


def cli_command(*args: str) -> list[str]:
    """The ``depthstream`` command line, run from this checkout's interpreter."""
    return [sys.executable, "-m", "depthstream", *args]


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``depthstream`` as a user would, in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        cli_command(*args),
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_synthetic(*args: str, **options) -> subprocess.CompletedProcess:
    """``run_cli`` with the untrained parity weights (the real ones cannot be downloaded)."""
    return run_cli(*args, "--weights", "synthetic", **options)


def assert_clean_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """A user mistake: the given exit code, one ``error:`` line, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    return errors[0]
