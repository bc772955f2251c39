"""How close a path's output is to the fp32 eager output on the same input.

Three views: the worst pixel (max error over the reference's range), the
overall agreement (Pearson r), and what a depth user sees after the usual
scale-and-shift alignment of relative depth (AbsRel).  AbsRel is computed in
inverse depth, where the network answers, over pixels above 5% of the
reference's maximum so near-zero values (sky, ReLU-clipped) cannot dominate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from depthstream.stream.affine import fit_scale_shift

ABSREL_FLOOR = 0.05


@dataclass
class Fidelity:
    max_rel_err: float
    pearson_min: float
    pearson_median: float
    absrel: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def aligned_absrel(got: np.ndarray, ref: np.ndarray) -> float:
    """AbsRel of ``got`` after the least-squares scale and shift onto ``ref``."""
    scale, shift = fit_scale_shift(got, ref)
    aligned = scale * got.astype(np.float64) + shift
    mask = ref > ABSREL_FLOOR * ref.max()
    return float(np.mean(np.abs(aligned[mask] - ref[mask]) / ref[mask]))


def compare(outputs: np.ndarray, references: np.ndarray) -> Fidelity:
    """``outputs`` and ``references``: ``(N, H, W)`` for the same N inputs."""
    errs, rs, absrels = [], [], []
    for got, ref in zip(outputs, references, strict=True):
        span = float(ref.max() - ref.min()) or 1.0
        errs.append(float(np.abs(got - ref).max()) / span)
        if np.array_equal(got, ref):  # exact: spare the fits their rounding noise
            rs.append(1.0)
            absrels.append(0.0)
            continue
        rs.append(float(np.corrcoef(got.ravel(), ref.ravel())[0, 1]))
        absrels.append(aligned_absrel(got, ref))
    return Fidelity(max(errs), min(rs), float(np.median(rs)), float(np.mean(absrels)))
