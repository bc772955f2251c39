"""Property-based tests: whatever arrives, a clean refusal or a valid answer, never a 500, and
the server keeps serving.  One server (a real pipeline on the sample clip) takes every
example of a property; its threads and fds are checked after.  Examples are derandomized,
so every run (CI included) tries the same ones."""

from __future__ import annotations

import asyncio
import os
import threading
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depthstream.stream.calibration import fit
from depthstream.stream.config import Config, WebConfig, config_from_dict
from depthstream.stream.errors import UserError
from tests.test_web import serve
from tests.tools.attacks import aiortc_offer

PNG = next((Path(__file__).parent / "data" / "cases" / "camera").glob("*.png")).read_bytes()
OFFER = asyncio.run(aiortc_offer()).encode()
EXAMPLES = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
toml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@EXAMPLES
@given(
    st.dictionaries(
        st.sampled_from(["model", "normalize", "temporal", "web", "calibration", "x"]),
        st.dictionaries(
            st.sampled_from(["ema", "port", "points", "stabilize", "token", "threads", "y"]),
            toml_values,
        ),
    )
)
def test_any_config_is_valid_or_a_clean_error(data) -> None:
    try:
        config_from_dict(data)
    except UserError as exc:
        assert str(exc).startswith("config:")


@EXAMPLES
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=8),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=8),
)
def test_any_calibration_points_fit_or_are_refused(values, metres) -> None:
    import numpy as np

    n = min(len(values), len(metres))
    try:
        result = fit(np.array(values[:n]), np.array(metres[:n]))
    except UserError:
        return
    assert result.scale > 0 and np.isfinite(result.shift)


def mutated(data: bytes, cuts: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in cuts:
        if out:
            out[position % len(out)] = value
    return bytes(out)


bodies = st.one_of(
    st.binary(max_size=256),
    st.integers(0, len(PNG)).map(lambda n: PNG[:n]),
    st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=6).map(
        lambda cuts: mutated(PNG[:4096], cuts)
    ),
    st.binary(max_size=64).map(lambda b: b"\xff\xd8\xff\xe0" + b),
)
requests = st.one_of(
    st.tuples(st.just("/api/depth"), st.sampled_from(["image/png", "multipart/form-data",
              "multipart/form-data; boundary=x", "application/json"]), bodies),
    st.tuples(st.just("/offer"), st.just("application/json"),
              st.one_of(st.binary(max_size=128), st.builds(
                  lambda s, t: f'{{"sdp": {s}, "type": {t}}}'.encode(),
                  st.sampled_from(['"v=0"', '"v=0\\r\\nm=video"', "1", "null", '"x"']),
                  st.sampled_from(['"offer"', '"answer"', "2"])))),
    st.tuples(st.just("/whep"), st.just("application/sdp"),
              st.one_of(st.binary(max_size=128), st.just(b"v=0\r\n"),
                        st.text(max_size=64).map(lambda t: ("v=0\r\n" + t).encode()))),
    # A real aiortc offer with bytes replaced, lines dropped or repeated.
    st.tuples(st.just("/whep"), st.just("application/sdp"), st.one_of(
        st.lists(st.tuples(st.integers(0, len(OFFER)), st.integers(0, 255)), max_size=8).map(
            lambda cuts: mutated(OFFER, cuts)),
        st.lists(st.booleans(), min_size=1, max_size=80).map(
            lambda keep: b"\r\n".join(line for line, k in zip(
                OFFER.split(b"\r\n"), keep * 40, strict=False) if k)),
        st.integers(1, 6).map(lambda n: OFFER.replace(b"a=mid:0", b"a=mid:0\r\na=mid:1" * n)))),
    # Any bytes as the token in the query (percent-encoded as a browser would).
    st.tuples(st.binary(max_size=24).map(lambda b: "/api/settings?token=" + "".join(
        f"%{c:02X}" for c in b)), st.just("application/json"), st.just(b"{}")),
    st.tuples(st.just("/api/settings"), st.just("application/json"),
              st.one_of(st.binary(max_size=64), st.builds(
                  lambda k, v: f'{{"{k}": {v}}}'.encode(),
                  st.sampled_from(["colormap", "layout", "freeze", "x"]),
                  st.sampled_from(['"jet"', '"depth"', "true", "1", "null", "[]", '"no"'])))),
)  # fmt: skip


@pytest.mark.timeout(900)
def test_no_request_body_answers_500_or_leaks(estimator) -> None:
    async def body(client, state):
        seen: list[int] = []
        threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))

        @settings(
            max_examples=250,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(requests)
        def check(request) -> None:
            path, content_type, data = request
            headers = {"Content-Type": content_type}
            if "token=" not in path:
                headers["Authorization"] = "Bearer fuzz"
            answer = asyncio.run_coroutine_threadsafe(
                client.post(path, data=data, headers=headers), loop
            ).result(60)
            status = answer.status
            asyncio.run_coroutine_threadsafe(answer.read(), loop).result(60)
            seen.append(status)
            assert status < 500 or status == 503, (path, content_type, data[:80], status)

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, check)
        health = await client.get("/healthz")  # open without the token
        assert health.status == 200 and (await health.json())["status"] == "ok"
        await state.peers.close_all()
        await asyncio.sleep(1.0)
        print(f"{len(seen)} requests; statuses {sorted(set(seen))}")
        assert threading.active_count() <= threads + 4
        assert len(os.listdir("/proc/self/fd")) <= fds + 8

    # Limits high enough that every example reaches its handler instead of the rate limit.
    cfg = Config()
    cfg.web = WebConfig(
        offers_per_minute=100_000, offer_burst=100_000, max_viewers=64, token="fuzz"
    )
    serve(estimator, body, cfg)


GET_ROUTES = ["/", "/static/", "/api/settings", "/api/legend", "/api/cameras", "/healthz",
              "/metrics", "/ws/obstacles", "/whep/"]  # fmt: skip
KEYS = ["camera", "colormap", "format", "token", "layout", ""]


def query(pairs: list[tuple[str, bytes]]) -> str:
    """``key=value&...`` with every value's bytes percent-encoded."""
    return "&".join(k + "=" + "".join(f"%{b:02X}" for b in v) for k, v in pairs)


get_requests = st.tuples(
    st.sampled_from(GET_ROUTES),
    st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), max_size=12),
    st.lists(st.tuples(st.sampled_from(KEYS), st.binary(max_size=16)), max_size=3),
)


def test_no_query_or_path_on_a_get_route_answers_500(estimator) -> None:
    """Any path segment and query bytes on every GET route (and the WebSocket route as a
    plain GET): never a 5xx other than 503, with and without the token."""

    async def body(client, _state):
        seen: list[int] = []

        @settings(max_examples=150, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(get_requests, st.booleans())
        def check(request, with_token: bool) -> None:
            route, segment, pairs = request
            path = route + (segment if route.endswith("/") else "") + "?" + query(pairs)
            headers = {"Authorization": "Bearer fuzz"} if with_token else {}
            answer = asyncio.run_coroutine_threadsafe(
                client.get(path, headers=headers), loop
            ).result(60)
            status = answer.status
            asyncio.run_coroutine_threadsafe(answer.read(), loop).result(60)
            seen.append(status)
            assert status < 500 or status == 503, (path, status)

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, check)
        print(f"{len(seen)} requests; statuses {sorted(set(seen))}")

    serve(estimator, body, Config(web=WebConfig(token="fuzz")))


def test_the_config_file_parses_as_toml_once_more() -> None:
    """The fuzzed loader's input language: the repository's own file loads."""
    root = Path(__file__).resolve().parents[1]
    config_from_dict(tomllib.loads((root / "config.toml").read_text()))
