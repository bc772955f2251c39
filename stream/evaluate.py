"""Zero-shot evaluation on RGB + measured depth, as the MiDaS paper does it.

Per image: least-squares scale and shift aligning the prediction to the ground
truth in inverse depth (valid pixels only), prediction disparity capped at the
largest measured distance, then AbsRel and delta < 1.25 against the measured
depth.  Reads the NYU (mm / 1000) and KITTI (/ 256) layouts of
``test_annotations.json``; 0 means "no measurement".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthstream.stream.affine import fit_scale_shift
from depthstream.stream.errors import UserError


@dataclass(frozen=True)
class RgbdPair:
    name: str
    rgb: Path
    depth: Path
    depth_scale: float


def find_pairs(folder: Path) -> list[RgbdPair]:
    """Pairs listed in ``folder/test_annotations.json`` (paths mapped into ``folder``)."""
    index = folder / "test_annotations.json"
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    try:
        files = json.loads(index.read_text())["files"]
    except FileNotFoundError:
        raise UserError(f"{folder}: no test_annotations.json listing the RGB-D pairs") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{index}: not a valid annotations file") from None
    pairs = []
    for entry in files:
        try:
            rgb, depth = Path(entry["rgb"]), Path(entry["depth"])
            scale = float(entry["depth_scale"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{index}: an entry lacks rgb, depth or depth_scale") from None
        pairs.append(
            RgbdPair(
                rgb.stem,
                folder / rgb.parent.name / rgb.name,
                folder / depth.parent.name / depth.name,
                scale,
            )
        )
    if not pairs:
        raise UserError(f"{index}: lists no pairs")
    return pairs


def read_depth(pair: RgbdPair) -> np.ndarray:
    """Ground truth in metres (float32), 0 where there is no measurement."""
    if not pair.depth.is_file():
        raise UserError(f"{pair.depth}: depth file missing")
    raw = cv2.imread(str(pair.depth), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2:
        raise UserError(f"{pair.depth}: not a readable single-channel depth PNG")
    return raw.astype(np.float32) / pair.depth_scale


def score(prediction: np.ndarray, depth_m: np.ndarray) -> dict[str, float]:
    """AbsRel and delta1 of an inverse-relative ``prediction`` against ``depth_m``."""
    if prediction.shape != depth_m.shape:
        raise ValueError(f"prediction {prediction.shape} and depth {depth_m.shape} differ")
    valid = (depth_m > 0) & np.isfinite(depth_m)
    if valid.sum() < 10:
        raise UserError("fewer than 10 pixels have a depth measurement")
    s, t = fit_scale_shift(prediction[valid], 1.0 / depth_m[valid].astype(np.float64))
    disparity = s * prediction[valid].astype(np.float64) + t
    disparity = np.maximum(disparity, 1.0 / float(depth_m[valid].max()))
    predicted = 1.0 / disparity
    truth = depth_m[valid].astype(np.float64)
    ratio = np.maximum(predicted / truth, truth / predicted)
    return {
        "abs_rel": float(np.mean(np.abs(predicted - truth) / truth)),
        "delta1": float(np.mean(ratio < 1.25)),
        "valid_pixels": int(valid.sum()),
        "scale": s,
        "shift": t,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The printed summary: one line per image and the mean."""
    lines = [f"{'image':<24} {'AbsRel':>8} {'d<1.25':>8} {'valid px':>10}"]
    lines += [
        f"{r['name']:<24} {r['abs_rel']:8.4f} {r['delta1']:8.4f} {r['valid_pixels']:10d}"
        for r in rows
    ]
    lines.append(
        f"{'mean':<24} {np.mean([r['abs_rel'] for r in rows]):8.4f} "
        f"{np.mean([r['delta1'] for r in rows]):8.4f}"
    )
    return "\n".join(lines)
