"""config.toml holds every default, and bad keys or types are named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from depthstream.stream.config import Config, load_config, with_overrides
from depthstream.stream.errors import UserError
from tests.conftest import ROOT, assert_clean_error, run_synthetic


def test_repository_config_spells_out_every_default() -> None:
    import tomllib

    data = tomllib.loads((ROOT / "config.toml").read_text())
    defaults = dataclasses.asdict(Config())
    assert data == defaults
    assert load_config(ROOT / "config.toml") == Config()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[model]\nthreds = 2\n", "model.threds"),
        ("[modle]\n", "[modle]"),
        ("[model]\nthreads = 'two'\n", "model.threads"),
        ("[normalize]\nema = true\n", "normalize.ema"),
        ("[normalize]\nema = 0.0\n", "normalize.ema"),
        ("[normalize]\nlow_percentile = 99.0\n", "low_percentile"),
        ("[render]\ncolormap = 'rainbow'\n", "render.colormap"),
        ("[render]\nlayout = 'stacked'\n", "render.layout"),
        ("[web]\nbitrate = 500\n", "web.bitrate"),
        ("[web]\nkeyframe_interval = 0\n", "web.keyframe_interval"),
        ("model = 3\n", "[model]"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_bad_config_is_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(UserError, match="config") as err:
        load_config(path)
    assert named in str(err.value)


def test_ints_are_accepted_for_floats_and_flags_override(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[normalize]\nema = 1\n[render]\ncolormap = 'turbo'\n")
    cfg = load_config(path)
    assert cfg.normalize.ema == 1.0 and isinstance(cfg.normalize.ema, float)
    cfg = with_overrides(cfg, render={"colormap": "gray", "layout": None})
    assert cfg.render.colormap == "gray" and cfg.render.layout == "depth"


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_cli_names_the_bad_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[render]\ncolour = 'inferno'\n")
    proc = run_synthetic(
        "image",
        str(ROOT / "tests/data/cases/chelsea/chelsea.png"),
        "--config",
        str(bad),
        cwd=tmp_path,
    )
    assert "render.colour" in assert_clean_error(proc)


CAMERAS = """
[calibration]
scale = 0.02
shift = 0.1
[obstacles]
sectors = 5
warn_metres = 1.5

[[cameras]]
name = "door"
source = "rtsp://10.0.0.2/s"
input_size = 320
[cameras.calibration]
scale = 0.05
[cameras.obstacles]
sectors = 3

[[cameras]]
name = "yard"
source = "sample"
publish = "rtsp://mtx:8554/yard"
"""


def test_cameras_take_their_own_settings_over_the_global_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CAMERAS)
    cfg = load_config(path)
    door, yard = cfg.cameras
    assert (door.name, door.source, door.publish) == ("door", "rtsp://10.0.0.2/s", "")
    door_settings, yard_settings = door.settings(cfg), yard.settings(cfg)
    assert (door_settings.name, door_settings.named, yard_settings.publish) == (
        "door",
        True,
        "rtsp://mtx:8554/yard",
    )
    d, y = door_settings.config, yard_settings.config
    # A camera's table overrides the keys it gives; the rest come from the global section.
    assert (d.calibration.scale, d.calibration.shift) == (0.05, 0.1)
    assert (d.obstacles.sectors, d.obstacles.warn_metres) == (3, 1.5)
    assert d.model.size() == 320 and y.model.size() == 256
    assert y.calibration == cfg.calibration and yard.publish == "rtsp://mtx:8554/yard"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[[cameras]]\nname = "a"\n', "needs name and source"),
        ('[[cameras]]\nname = "a"\nsource = "s"\nzoom = 2\n', "needs name and source"),
        ('[[cameras]]\nname = "a b"\nsource = "s"\n', "camera name"),
        ('[[cameras]]\nname = "a"\nsource = "s"\n[cameras.obstacles]\nsector = 3\n', "sector"),
        ('[[cameras]]\nname = "a"\nsource = "s"\n[cameras.obstacles]\nsectors = 0\n', "sectors"),
        ('[[cameras]]\nname = "a"\nsource = "s"\ninput_size = 100\n', "input_size"),
        ('[[cameras]]\nname = "a"\nsource = "s"\nmodel = "nope"\n', "model.name 'nope'"),
    ],
)
def test_bad_camera_tables_are_refused_naming_the_key(tmp_path: Path, text, named) -> None:
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(UserError, match=named):
        load_config(tmp_path / "c.toml")


def test_every_section_checks_itself() -> None:
    """Validation lives with each section: a bad value in any one is refused by that
    section's own check, and the whole config's check words it as a config error."""
    bad = {
        "model": ("input_size", 100),
        "normalize": ("ema", 0.0),
        "temporal": ("pixel_ema", 2.0),
        "render": ("colormap", "nope"),
        "output": ("crf", 99),
        "pipeline": ("queue_size", 0),
        "camera": ("fx", -1.0),
        "network": ("transport", "sctp"),
        "web": ("port", 70000),
        "calibration": ("points", [[1.0, 2.0]]),
        "obstacles": ("sectors", 0),
        "geometry": ("stride", 0),
        "robot": ("jpeg_quality", 0),
        "publish": ("timeout", 0.0),
        "mqtt": ("keepalive", 1),
    }
    assert sorted(bad) == sorted(f.name for f in dataclasses.fields(Config) if f.name != "cameras")
    Config().check()
    for name, (key, value) in bad.items():
        section = dataclasses.replace(getattr(Config(), name), **{key: value})
        with pytest.raises(ValueError, match=rf"^{name}\b"):
            section.check()
        with pytest.raises(UserError, match=rf"^config: {name}\b"):
            dataclasses.replace(Config(), **{name: section}).check()
