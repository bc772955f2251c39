"""Weights: strict loading, the resolution order, checksummed downloads and the CLI's errors.

Downloads go to a real HTTP server on 127.0.0.1 started by these tests; nothing
here talks to any other host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from depthstream.stream.config import ModelConfig
from depthstream.stream.errors import UserError
from depthstream.stream.model.locate import ENV_VAR, WeightsChoice, choose_weights
from depthstream.stream.model.registry import MODELS
from depthstream.stream.model.weights import check_state_dict, load_model, read_state_dict
from tests.conftest import DATA, assert_clean_error, run_cli, run_synthetic

CHELSEA = DATA / "cases" / "chelsea" / "chelsea.png"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

WEIGHTS_FILENAME = MODELS["midas-small"].weights_file


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy may reroute 127.0.0.1 traffic, and no stray env var may pick weights."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv(ENV_VAR, raising=False)


def _cfg(tmp_path: Path, **model: str) -> ModelConfig:
    """A config whose cache lives in ``tmp_path/cache`` and whose URL can never leave the host."""
    base = ModelConfig(
        cache_dir=str(tmp_path / "cache"),
        weights_url=f"http://127.0.0.1:{_closed_port()}/{WEIGHTS_FILENAME}",
    )
    return dataclasses.replace(base, **model)


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _toml(value: str) -> str:
    """A TOML basic string (JSON escaping is a valid subset for these values)."""
    return json.dumps(value)


@pytest.fixture(scope="module")
def synthetic_sd(synthetic_model) -> dict[str, torch.Tensor]:
    """The synthetic weights as a fresh dict (entries are shared: replace, never mutate)."""
    return dict(synthetic_model.model.state_dict())


@pytest.fixture(scope="module")
def weights_file(
    synthetic_sd: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A real ``torch.save`` file of the synthetic state dict, shared by the module."""
    path = tmp_path_factory.mktemp("weights") / WEIGHTS_FILENAME
    torch.save(synthetic_sd, path)
    return path


def _save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


# --------------------------------------------------------------------------- local HTTP server


class _Server(http.server.ThreadingHTTPServer):
    """Serves ``payload`` at any path; ``mode`` is "ok", "500" or "truncate"."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.payload = b""
        self.mode = "ok"
        self.requests: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{WEIGHTS_FILENAME}"

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up mid-body is part of some tests; keep the output quiet."""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.requests.append(self.path)
        if srv.mode == "500":
            body = b"internal error"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        data = srv.payload
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if srv.mode == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default per-request log lines."""


@pytest.fixture
def server(weights_file: Path) -> Iterator[_Server]:
    """A live HTTP server on 127.0.0.1 serving the synthetic weights file."""
    srv = _Server()
    srv.payload = weights_file.read_bytes()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def _download_cfg(tmp_path: Path, srv: _Server, sha256: str) -> ModelConfig:
    return _cfg(tmp_path, weights_url=srv.url, weights_sha256=sha256)


def _cache_listing(tmp_path: Path) -> list[str]:
    """Every entry of the cache dir, hidden temp files included."""
    cache = tmp_path / "cache"
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


# --------------------------------------------------------------------------- strict loading


def test_bare_state_dict_loads_and_matches_synthetic(synthetic_model, weights_file: Path) -> None:
    """A bare ``torch.save(state_dict)`` file loads strictly and computes the same depth."""
    loaded = load_model(WeightsChoice(weights_file, "test"))
    assert not loaded.choice.synthetic
    assert loaded.digest == _sha256(weights_file)
    assert not loaded.model.training
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = synthetic_model.model(x)
        got = loaded.model(x)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)


def test_wrapped_state_dict_loads(
    synthetic_model, synthetic_sd: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    """``{"model": sd, "epoch": 3}`` (a training checkpoint) is unwrapped and loads."""
    path = _save({"model": synthetic_sd, "epoch": 3}, tmp_path / "ckpt.pt")
    state, digest = read_state_dict(path)
    assert set(state) == set(synthetic_sd)
    assert digest == _sha256(path)
    loaded = load_model(WeightsChoice(path, "test"))
    torch.manual_seed(1)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), synthetic_model.model(x))


def test_read_state_dict_digest_is_file_sha256(weights_file: Path) -> None:
    """The digest returned with the tensors is the SHA-256 of the file's bytes."""
    state, digest = read_state_dict(weights_file)
    assert digest == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def _missing(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    key = list(sd)[len(sd) // 2]
    return {k: v for k, v in sd.items() if k != key}, key


def _extra(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    key = "pretrained.bogus_extra.weight"
    return {**sd, key: torch.zeros(3)}, key


def _misshaped(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    key = next(k for k, v in sd.items() if v.ndim == 4)
    bad = torch.zeros(sd[key].shape[0] + 1, *sd[key].shape[1:])
    return {**sd, key: bad}, key


BROKEN = {"missing": _missing, "extra": _extra, "misshaped": _misshaped}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_load_model_rejects_and_names_bad_key(
    synthetic_sd: dict[str, torch.Tensor], tmp_path: Path, kind: str
) -> None:
    """A missing, extra or mis-shaped entry in a weights file is a UserError naming that key."""
    state, key = BROKEN[kind](synthetic_sd)
    path = _save(state, tmp_path / f"{kind}.pt")
    with pytest.raises(UserError) as info:
        load_model(WeightsChoice(path, "test"))
    message = str(info.value)
    assert key in message
    assert str(path) in message
    assert "not MiDaS v2.1 small weights" in message


@pytest.mark.parametrize("kind", list(BROKEN))
def test_check_state_dict_names_bad_key(synthetic_sd: dict[str, torch.Tensor], kind: str) -> None:
    """``check_state_dict`` alone refuses the same dicts, naming the key and the source."""
    state, key = BROKEN[kind](synthetic_sd)
    with pytest.raises(UserError, match=r"somewhere\.pt") as info:
        check_state_dict(synthetic_sd, state, "somewhere.pt")
    assert key in str(info.value)


def test_check_state_dict_accepts_exact_match(synthetic_sd: dict[str, torch.Tensor]) -> None:
    """An exact key/shape match passes (so the refusals above are not blanket ones)."""
    check_state_dict(synthetic_sd, dict(synthetic_sd), "same")


@pytest.mark.parametrize(
    "content",
    [random.Random(1234).randbytes(4096), b"these are not the weights you are looking for\n" * 20],
    ids=["random-bytes", "text"],
)
def test_non_torch_file_is_clear_user_error(tmp_path: Path, content: bytes) -> None:
    """Random bytes or a text file: a UserError naming the file as not PyTorch weights."""
    path = tmp_path / "fake.pt"
    path.write_bytes(content)
    for call in (lambda: read_state_dict(path), lambda: load_model(WeightsChoice(path, "t"))):
        with pytest.raises(UserError) as info:
            call()
        message = str(info.value)
        assert str(path) in message
        assert "not a PyTorch weights file" in message
        assert "\n" not in message


def test_torch_file_without_tensors_is_user_error(tmp_path: Path) -> None:
    """A valid torch file holding something other than a state dict is refused clearly."""
    path = _save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(UserError, match="does not hold a state dict of tensors"):
        read_state_dict(path)


def test_unreadable_weights_path_is_user_error(tmp_path: Path) -> None:
    """A path that cannot be read (a directory) is a UserError, not an OSError."""
    with pytest.raises(UserError, match="cannot read weights file"):
        read_state_dict(tmp_path)


# --------------------------------------------------------------------------- resolution order


@pytest.fixture
def four_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """One existing file per source: --weights, config, env, and the user cache."""
    files = {name: tmp_path / f"{name}.pt" for name in ("cli", "config", "env")}
    for path in files.values():
        path.write_bytes(b"x")
    cached = tmp_path / "cache" / WEIGHTS_FILENAME
    cached.parent.mkdir()
    cached.write_bytes(b"x")
    files["cache"] = cached
    monkeypatch.setenv(ENV_VAR, str(files["env"]))
    return files


def test_cli_beats_config_env_and_cache(tmp_path: Path, four_sources: dict[str, Path]) -> None:
    """``--weights`` wins over every other source."""
    cfg = _cfg(tmp_path, weights=str(four_sources["config"]))
    choice = choose_weights(str(four_sources["cli"]), cfg, allow_download=False)
    assert choice == WeightsChoice(four_sources["cli"], "--weights")


def test_config_beats_env_and_cache(tmp_path: Path, four_sources: dict[str, Path]) -> None:
    """Without ``--weights``, ``[model] weights`` wins over the env var and the cache."""
    cfg = _cfg(tmp_path, weights=str(four_sources["config"]))
    choice = choose_weights(None, cfg, allow_download=False)
    assert choice.path == four_sources["config"]
    assert "config" in choice.origin


def test_env_beats_cache(tmp_path: Path, four_sources: dict[str, Path]) -> None:
    """Without flag or config value, ``DEPTHSTREAM_WEIGHTS`` wins over the cache."""
    choice = choose_weights(None, _cfg(tmp_path), allow_download=False)
    assert choice.path == four_sources["env"]
    assert ENV_VAR in choice.origin


def test_cache_used_last(
    tmp_path: Path, four_sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing else set, the cache file ``<cache_dir>/midas_v21_small_256.pt`` is used."""
    monkeypatch.delenv(ENV_VAR)
    choice = choose_weights(None, _cfg(tmp_path), allow_download=False)
    assert choice == WeightsChoice(four_sources["cache"], "cache")


def test_cache_dir_defaults_to_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no ``cache_dir`` set, the cache file is looked up under ``$XDG_CACHE_HOME``."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cached = tmp_path / "xdg" / "depthstream" / WEIGHTS_FILENAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    cfg = dataclasses.replace(_cfg(tmp_path), cache_dir="")
    assert choose_weights(None, cfg, allow_download=False) == WeightsChoice(cached, "cache")


@pytest.mark.parametrize("slot", ["cli", "config", "env"])
def test_synthetic_by_name(
    tmp_path: Path, four_sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch, slot: str
) -> None:
    """``synthetic`` in any source selects the untrained weights (and beats later sources)."""
    cli = "synthetic" if slot == "cli" else None
    cfg = _cfg(tmp_path, weights="synthetic" if slot == "config" else "")
    if slot == "env":
        monkeypatch.setenv(ENV_VAR, "synthetic")
    choice = choose_weights(cli, cfg, allow_download=False)
    assert choice.synthetic is True
    assert choice.path is None


def test_never_synthetic_unless_named(tmp_path: Path) -> None:
    """With nothing found, the result is an error, never a silent synthetic fallback."""
    with pytest.raises(UserError):
        choose_weights(None, _cfg(tmp_path), allow_download=False)


def test_file_named_like_synthetic_is_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the exact word selects synthetic: ``synthetic.pt`` is an ordinary weights path."""
    monkeypatch.chdir(tmp_path)
    Path("synthetic.pt").write_bytes(b"x")
    choice = choose_weights("synthetic.pt", _cfg(tmp_path), allow_download=False)
    assert choice.synthetic is False
    assert choice.path == Path("synthetic.pt")


@pytest.mark.parametrize("slot", ["cli", "config", "env"])
def test_nonexistent_explicit_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slot: str
) -> None:
    """A named weights file that does not exist is a UserError naming it, even if cached."""
    cached = tmp_path / "cache" / WEIGHTS_FILENAME
    cached.parent.mkdir()
    cached.write_bytes(b"x")
    missing = str(tmp_path / "nope" / "weights.pt")
    cfg = _cfg(tmp_path, weights=missing if slot == "config" else "")
    if slot == "env":
        monkeypatch.setenv(ENV_VAR, missing)
    with pytest.raises(UserError, match="does not exist") as info:
        choose_weights(missing if slot == "cli" else None, cfg, allow_download=False)
    assert missing in str(info.value)


def test_nothing_found_says_where_to_put_file(tmp_path: Path) -> None:
    """No weights and no download allowed: the error names the cache path and the options."""
    cfg = _cfg(tmp_path)
    with pytest.raises(UserError) as info:
        choose_weights(None, cfg, allow_download=False)
    message = str(info.value)
    assert str(cfg.cache_root() / WEIGHTS_FILENAME) in message
    assert "--weights" in message
    assert ENV_VAR in message
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- download


def test_download_success(tmp_path: Path, server: _Server, weights_file: Path) -> None:
    """A correct download lands in the cache byte for byte, loads, and leaves no temp file."""
    cfg = _download_cfg(tmp_path, server, _sha256(weights_file))
    choice = choose_weights(None, cfg)
    cached = tmp_path / "cache" / WEIGHTS_FILENAME
    assert choice == WeightsChoice(cached, "download")
    assert cached.read_bytes() == weights_file.read_bytes()
    assert _cache_listing(tmp_path) == [WEIGHTS_FILENAME]
    assert server.requests == [f"/{WEIGHTS_FILENAME}"]
    loaded = load_model(choice)
    assert loaded.digest == _sha256(weights_file)


def test_download_checksum_mismatch(tmp_path: Path, server: _Server) -> None:
    """Bytes that do not match ``weights_sha256`` are refused and nothing is cached."""
    cfg = _download_cfg(tmp_path, server, "0" * 64)
    with pytest.raises(UserError, match="checksum") as info:
        choose_weights(None, cfg)
    assert "--weights" in str(info.value)
    assert len(server.requests) == 1
    assert _cache_listing(tmp_path) == []


def test_download_http_500(tmp_path: Path, server: _Server, weights_file: Path) -> None:
    """An HTTP 500 is a UserError quoting the status; nothing is left in the cache."""
    server.mode = "500"
    cfg = _download_cfg(tmp_path, server, _sha256(weights_file))
    with pytest.raises(UserError, match="500"):
        choose_weights(None, cfg)
    assert len(server.requests) == 1
    assert _cache_listing(tmp_path) == []


def test_download_truncated(tmp_path: Path, server: _Server, weights_file: Path) -> None:
    """A connection closed after half the announced bytes is a UserError; nothing is cached."""
    server.mode = "truncate"
    cfg = _download_cfg(tmp_path, server, _sha256(weights_file))
    with pytest.raises(UserError, match="could not download"):
        choose_weights(None, cfg)
    assert len(server.requests) == 1
    assert _cache_listing(tmp_path) == []


def test_download_truncated_without_checksum(tmp_path: Path, server: _Server) -> None:
    """Even with no checksum configured, a short body is caught by its Content-Length."""
    server.mode = "truncate"
    cfg = _download_cfg(tmp_path, server, "")
    with pytest.raises(UserError, match="bytes"):
        choose_weights(None, cfg)
    assert _cache_listing(tmp_path) == []


def test_download_then_cache_without_request(
    tmp_path: Path, server: _Server, weights_file: Path
) -> None:
    """After one download, the next resolution uses the cache and never contacts the server."""
    cfg = _download_cfg(tmp_path, server, _sha256(weights_file))
    first = choose_weights(None, cfg)
    assert first.origin == "download"
    assert len(server.requests) == 1
    server.mode = "500"
    second = choose_weights(None, cfg)
    assert second == WeightsChoice(first.path, "cache")
    assert len(server.requests) == 1


# --------------------------------------------------------------------------- CLI


def _write_config(tmp_path: Path, **model: str) -> Path:
    lines = ["[model]", *(f"{k} = {_toml(v)}" for k, v in model.items())]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_no_weights_download_fails_cleanly(tmp_path: Path) -> None:
    """No weights and an unreachable URL: exit 2, one error line naming the fix, no traceback."""
    cache = tmp_path / "cache"
    url = f"http://127.0.0.1:{_closed_port()}/{WEIGHTS_FILENAME}"
    config = _write_config(tmp_path, weights_url=url, cache_dir=str(cache))
    proc = run_cli(
        "image",
        str(CHELSEA),
        "--config",
        str(config),
        "--out-dir",
        str(tmp_path / "out"),
        env={"XDG_CACHE_HOME": str(tmp_path)},
    )
    line = assert_clean_error(proc)
    assert str(cache / WEIGHTS_FILENAME) in line
    assert "--weights" in line
    assert "127.0.0.1" in line
    assert not (tmp_path / "out").exists()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_cli_synthetic_warns_untrained(tmp_path: Path) -> None:
    """``--weights synthetic`` runs, writes the heat map, and warns UNTRAINED on stderr."""
    url = f"http://127.0.0.1:{_closed_port()}/{WEIGHTS_FILENAME}"
    config = _write_config(tmp_path, weights_url=url)
    out = tmp_path / "chelsea_depth.png"
    proc = run_synthetic("image", str(CHELSEA), "--config", str(config), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "UNTRAINED" in proc.stderr
    assert out.is_file() and out.stat().st_size > 0


def test_cli_unusable_cache_dir_is_a_clean_error(tmp_path: Path) -> None:
    """A cache folder that cannot be created: exit 2 with one line, not a traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    config = _write_config(
        tmp_path,
        cache_dir=str(blocker / "sub"),
        weights_url=f"http://127.0.0.1:{_closed_port()}/w.pt",
    )
    proc = run_cli("image", str(CHELSEA), "--config", str(config), cwd=tmp_path)
    assert "cannot write to" in assert_clean_error(proc)


def test_whole_pickled_model_gets_advice(tmp_path: Path) -> None:
    path = _save(torch.nn.Linear(2, 2), tmp_path / "model.pt")
    with pytest.raises(UserError, match=r"model\.state_dict\(\)") as err:
        read_state_dict(path)
    assert "\x1b" not in str(err.value)


def test_directory_as_weights_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a directory"):
        choose_weights(str(tmp_path), _cfg(tmp_path), allow_download=False)
