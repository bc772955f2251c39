"""The jitter buffer's arithmetic: bursts play out at their timestamps' pace, steady
streams are not held, nothing is ever held longer than the bound."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from depthstream.capture.pacing import HOLD_MEMORY, JitterBuffer

FPS = 25.0


def hls(segments: int, seconds: float = 1.0, lag: float = 0.3) -> list[tuple[float, float]]:
    """(arrival, pts): each segment's frames all arrive ``lag`` s after the segment ends."""
    per = int(seconds * FPS)
    return [
        ((s + 1) * seconds + lag + i * 0.001, s * seconds + i / FPS)
        for s in range(segments)
        for i in range(per)
    ]


def schedule(frames: list[tuple[float, float]], max_delay: float = 1.5) -> np.ndarray:
    jitter = JitterBuffer(max_delay)
    return np.array([(a, *jitter.schedule(a, p)) for a, p in frames])


def test_hls_segments_play_out_evenly_after_the_first() -> None:
    out = schedule(hls(8))
    steady = out[2 * 25 :]
    gaps = np.diff(steady[:, 1])
    assert np.allclose(gaps, 1 / FPS, atol=0.002)
    # The first frame of a segment came a segment later than the last one would have.
    delays = steady[:, 2].reshape(-1, 25)
    assert np.allclose(delays[:, 0], 24 / FPS, atol=0.03) and np.all(delays[:, -1] < 0.01)


def test_a_steady_camera_is_not_held() -> None:
    rng = np.random.default_rng(0)
    frames = [(i / FPS + 0.05 + rng.uniform(0, 0.01), i / FPS) for i in range(200)]
    out = schedule(frames)
    assert np.all(out[:, 1] - out[:, 0] <= 0.011) and np.all(out[:, 2] <= 0.011)


def test_a_backlog_after_a_hiccup_skips_ahead_and_the_hold_fades() -> None:
    before = [(i / FPS + 0.05, i / FPS) for i in range(100)]
    # 5 s without frames, then the backlog at once, then real time again.
    backlog = [(9.0 + i * 0.001, 4.0 + i / FPS) for i in range(125)]
    after = [(9.0 + i / FPS + 0.05, 9.0 + i / FPS) for i in range(1, 300)]
    out = schedule(before + backlog + after)
    held = out[:, 1] - out[:, 0]
    assert held.max() <= 1.5 + 1e-9
    # Most of the backlog goes at once (dropped downstream, which keeps the newest).
    assert np.mean(held[100:225] < 0.01) > 0.5
    # Once the window has forgotten the backlog, fresh frames are not held.
    assert np.all(held[-50:] < 0.01)


def start_up(backlog_s: float, seconds: float = 20.0, lag: float = 0.05):
    """(arrival, pts): the frames a server sent while the model was loading, read at once
    (each more punctual than the one before), then the stream in real time."""
    n = int(backlog_s * FPS)
    backlog = [(backlog_s + lag + i * 0.003, i / FPS) for i in range(n)]
    live = [(i / FPS + lag + 0.005 * (i % 3), i / FPS) for i in range(n, int(seconds * FPS))]
    return backlog + live


def test_a_start_up_backlog_is_not_held() -> None:
    """The backlog read at start and the punctual stream after it go as they come."""
    out = schedule(start_up(3.0))
    held = out[:, 1] - out[:, 0]
    assert held.max() < 0.02, held.max()


def test_a_reconnect_backlog_is_not_held_either() -> None:
    """A new stream (timestamps back to 0) that starts with a backlog is held no more
    than one that starts punctually."""
    out = schedule(start_up(1.0, 10.0) + [(20 + a, p) for a, p in start_up(2.0, 10.0)])
    held = out[:, 1] - out[:, 0]
    assert held.max() < 0.02, held.max()


def test_a_hold_fades_within_its_memory() -> None:
    """One late arrival of 1 s paces its burst, then a punctual stream is free again."""
    before = [(i / FPS + 0.05, i / FPS) for i in range(100)]
    burst = [(5.0 + i * 0.001, 4.0 + i / FPS) for i in range(25)]
    after = [(5.0 + i / FPS + 0.05, 5.0 + i / FPS) for i in range(1, 200)]
    frames = before + burst + after
    out = schedule(frames)
    held = out[:, 1] - out[:, 0]
    assert np.allclose(np.diff(out[100:125, 1]), 1 / FPS, atol=0.002)  # the burst is paced
    arrival = np.array([a for a, _ in frames])
    assert np.all(held[arrival > 5.0 + HOLD_MEMORY + 0.01] < 0.01)


def test_a_timestamp_that_jumps_back_starts_afresh() -> None:
    frames = hls(3) + [(5.0 + i / FPS, i / FPS) for i in range(50)]
    out = schedule(frames)
    assert np.all(out[75:, 1] - out[75:, 0] < 0.01)


def test_frames_without_timestamps_go_at_once() -> None:
    jitter = JitterBuffer(1.5)
    assert jitter.schedule(3.0, None) == (3.0, 0.0)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.floats(0, 2.0), st.floats(-1.0, 1.0)), min_size=1, max_size=200),
    st.floats(0.05, 3.0),
)
def test_no_frame_is_held_longer_than_the_bound_nor_released_before_it_came(
    steps: list[tuple[float, float]], max_delay: float
) -> None:
    jitter = JitterBuffer(max_delay)
    arrival, pts = 0.0, 0.0
    for gap, step in steps:
        arrival += gap
        pts += step
        release, delay = jitter.schedule(arrival, pts)
        assert arrival <= release <= arrival + max_delay + 1e-9
        assert delay >= 0
