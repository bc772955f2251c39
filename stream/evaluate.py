"""Zero-shot evaluation on RGB + measured depth, as the MiDaS paper does it.

Per image: least-squares scale and shift aligning the prediction to the ground
truth in inverse depth (valid pixels only), prediction disparity capped at the
largest measured distance, then AbsRel and delta < 1.25 against the measured
depth.  A metric model is also scored as it answers, in metres with no alignment
(``metric_abs_rel``, ``metric_delta1``).  Reads the NYU (mm / 1000) and KITTI (/ 256)
layouts of ``test_annotations.json``; 0 means "no measurement".
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


def _measured(prediction: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
    """The pixels with a measurement (refusing maps of another size, or too few)."""
    if prediction.shape != depth_m.shape:
        raise ValueError(f"prediction {prediction.shape} and depth {depth_m.shape} differ")
    valid = (depth_m > 0) & np.isfinite(depth_m)
    if valid.sum() < 10:
        raise UserError("fewer than 10 pixels have a depth measurement")
    return valid


def _errors(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """AbsRel and delta < 1.25 of metres ``predicted`` against ``truth``."""
    ratio = np.maximum(predicted / truth, truth / predicted)
    return float(np.mean(np.abs(predicted - truth) / truth)), float(np.mean(ratio < 1.25))


def score(prediction: np.ndarray, depth_m: np.ndarray) -> dict[str, float]:
    """AbsRel and delta1 of an inverse-relative ``prediction`` against ``depth_m``."""
    valid = _measured(prediction, depth_m)
    s, t = fit_scale_shift(prediction[valid], 1.0 / depth_m[valid].astype(np.float64))
    disparity = s * prediction[valid].astype(np.float64) + t
    disparity = np.maximum(disparity, 1.0 / float(depth_m[valid].max()))
    abs_rel, delta1 = _errors(1.0 / disparity, depth_m[valid].astype(np.float64))
    return {
        "abs_rel": abs_rel,
        "delta1": delta1,
        "valid_pixels": int(valid.sum()),
        "scale": s,
        "shift": t,
    }


def metric_score(metres: np.ndarray, depth_m: np.ndarray) -> dict[str, float]:
    """AbsRel and delta1 of a metric model's own ``metres``, with no alignment."""
    valid = _measured(metres, depth_m)
    predicted = np.maximum(metres[valid].astype(np.float64), 1e-6)
    abs_rel, delta1 = _errors(predicted, depth_m[valid].astype(np.float64))
    return {"metric_abs_rel": abs_rel, "metric_delta1": delta1}


SCORES = ("abs_rel", "delta1", "metric_abs_rel", "metric_delta1")


def means(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of each score the rows carry."""
    return {k: float(np.mean([r[k] for r in rows])) for k in SCORES if k in rows[0]}


def table(rows: list[dict[str, Any]]) -> str:
    """The printed summary: one line per image and the mean; a metric model's rows add
    its unaligned scores."""
    metric = "metric_abs_rel" in rows[0]
    extra = f" {'metres AbsRel':>14} {'metres d<1.25':>14}" if metric else ""
    lines = [f"{'image':<24} {'AbsRel':>8} {'d<1.25':>8} {'valid px':>10}{extra}"]
    for r in rows:
        tail = f" {r['metric_abs_rel']:14.4f} {r['metric_delta1']:14.4f}" if metric else ""
        lines.append(
            f"{r['name']:<24} {r['abs_rel']:8.4f} {r['delta1']:8.4f} {r['valid_pixels']:10d}{tail}"
        )
    m = means(rows)
    tail = f" {m['metric_abs_rel']:14.4f} {m['metric_delta1']:14.4f}" if metric else ""
    lines.append(f"{'mean':<24} {m['abs_rel']:8.4f} {m['delta1']:8.4f} {'':>10}{tail}")
    return "\n".join(lines)
