"""A new user's first runs: mistakes caught before the model loads or the source opens, each
in one line; a version; a closing summary that names the files; progress and log lines
that do not run into each other; offline recordings without live-only figures."""

from __future__ import annotations

import re
import socket
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from depthstream.stream.assembly import open_pipeline
from depthstream.stream.config import Config
from tests.conftest import DATA, assert_clean_error, run_cli, run_synthetic

# A source that would fail if it were opened: the mistakes below must be found first.
UNREACHABLE = "rtsp://127.0.0.1:1/nothing"
# Logged when the synthetic weights are chosen, i.e. once the model starts loading.
MODEL_LOADING = "UNTRAINED"
IMAGE = DATA / "cases" / "camera" / "camera.png"


def refused_early(proc, *words: str) -> str:
    line = assert_clean_error(proc)
    assert all(word in line for word in words), line
    assert MODEL_LOADING not in proc.stderr and "tracing" not in proc.stderr, proc.stderr
    return line


@pytest.mark.parametrize(
    ("flag", "target", "words"),
    [
        ("--record", "afile/sub/out.mp4", ("afile is not a folder",)),
        ("--record-depth", "/proc/depth.mkv", ("cannot write files in /proc",)),
        ("--record-mcap", "adir", ("is a folder",)),
        ("--stats-json", "afile/stats.json", ("afile is not a folder",)),
    ],
)
def test_an_unwritable_output_is_refused_before_anything_starts(
    tmp_path: Path, flag: str, target: str, words: tuple[str, ...]
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "adir").mkdir()
    proc = run_synthetic("run", UNREACHABLE, "--display", "none", flag, target, cwd=tmp_path)
    refused_early(proc, flag, Path(target).name, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]  # nothing written


@pytest.mark.parametrize(
    "args",
    [
        ("image", str(IMAGE), "--raw", "afile/raw.npy"),
        ("eval", "--video", "clip.mp4", "--json", "afile/eval.json"),
    ],
    ids=["image", "eval"],
)
def test_other_commands_check_their_outputs_first(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "afile").write_text("not a folder")
    refused_early(run_synthetic(*args, cwd=tmp_path), "afile is not a folder")


def test_one_file_for_two_outputs_is_refused(tmp_path: Path) -> None:
    proc = run_synthetic(
        "run", UNREACHABLE, "--display", "none", "--record", "o.mp4", "--stats-json", "o.mp4",
        cwd=tmp_path,
    )  # fmt: skip
    refused_early(proc, "o.mp4", "two outputs")


def test_a_recording_needs_its_folder_and_the_figures_make_theirs(tmp_path: Path) -> None:
    """A recording into a folder that is not there is a typo to report; the stats JSON's
    folders are made, as the other commands' result files' are."""
    proc = run_synthetic(
        "run", UNREACHABLE, "--display", "none", "--record", "a/b/out.mp4", cwd=tmp_path
    )
    refused_early(proc, "--record", "out.mp4", "folder", "does not exist")
    proc = run_synthetic(
        "run", "sample", "--display", "none", "--frames", "3", "--record", "out.mp4",
        "--stats-json", "a/c/stats.json", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert (tmp_path / "a/c/stats.json").is_file()


@pytest.mark.parametrize("command", ["serve", "foxglove"])
def test_a_port_in_use_is_refused_before_the_model_loads(tmp_path: Path, command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if command == "serve":
            args = ("serve", UNREACHABLE, "--port", str(port))
        else:
            args = ("run", UNREACHABLE, "--display", "none", "--foxglove", str(port))
        proc = run_synthetic(*args, cwd=tmp_path)
    refused_early(proc, f"127.0.0.1:{port}", "in use")


def test_weights_of_another_network_are_refused_before_the_source_opens(tmp_path: Path) -> None:
    import torch

    torch.save({"head.weight": torch.zeros(3)}, tmp_path / "other.pt")
    proc = run_cli("run", UNREACHABLE, "--display", "none", "--weights", "other.pt", cwd=tmp_path)
    line = assert_clean_error(proc)
    assert "other.pt is not MiDaS v2.1 small weights" in line and "head.weight" in line
    assert "tracing" not in proc.stderr and "exporting" not in proc.stderr


def test_version_is_the_installed_distribution() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"depthstream {metadata.version('depthstream')}"


def test_the_run_ends_with_one_summary_naming_what_it_wrote(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[output]\nlog_interval = 0.3\n")
    (tmp_path / "out").mkdir()
    proc = run_synthetic(
        "run", "sample", "--display", "none", "--frames", "40", "--config", "c.toml",
        "--record", "out/view.mp4", "--record-depth", "out/depth.mkv", "--stats-json", "s.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in re.split(r"[\r\n]", proc.stderr) if line.strip()]
    done = [line for line in lines if line.startswith("depthstream: done:")]
    assert len(done) == 1 and re.match(
        r"depthstream: done: 40 frames in [\d.]+ s \([\d.]+ fps\), \d+ dropped", done[0]
    ), lines[-6:]
    wrote = [line.removeprefix("depthstream: wrote ") for line in lines if "wrote " in line]
    names = ["view.mp4", "depth.mkv", "s.json", "depth.json"]
    assert [Path(w).name for w in wrote] == names
    assert all(Path(w).is_absolute() and Path(w).is_file() for w in wrote)
    # The periodic figures (every 0.3 s here) were printed above the progress bar, each on
    # a line of its own, never run into the bar's text.
    figures = [i for i, line in enumerate(lines) if " fps | infer" in line]
    assert figures
    assert all(lines[i].startswith("depthstream: ") for i in figures), lines


def views(cfg: Config, *, offline: bool, overlay: bool) -> list[np.ndarray]:
    got: list[np.ndarray] = []

    class Keep:
        def write(self, result) -> None:
            got.append(result.view)

        def close(self) -> None:
            pass

    with open_pipeline(
        cfg, "sample", weights="synthetic", offline=offline, overlay=overlay, max_frames=8
    ) as pipeline:
        pipeline.add_sink(Keep())
        pipeline.run()
    return got


def white_text(view: np.ndarray) -> int:
    """Near-white pixels in the bottom-left corner, where the live figures are written (the
    inferno heat map's lightest colour has a blue of 164)."""
    return int(np.all(view[-24:, : view.shape[1] // 2] >= 230, axis=2).sum())


def test_offline_views_carry_no_live_figures() -> None:
    """Rate and frame age mean nothing for a file processed as fast as it goes: the offline
    view is the same with and without the overlay; a live one carries them."""
    cfg = Config()
    cfg.temporal.stabilize = False
    plain = views(cfg, offline=True, overlay=False)
    offline = views(cfg, offline=True, overlay=True)
    assert len(plain) == len(offline) == 8
    assert all(np.array_equal(a, b) for a, b in zip(plain, offline, strict=True))
    assert max(white_text(v) for v in offline) == 0
    live = views(cfg, offline=False, overlay=True)
    assert min(white_text(v) for v in live) > 20
