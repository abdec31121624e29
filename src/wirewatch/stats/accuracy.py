"""How well ``particle_descriptors`` reads straight wires: analytic rectangles rasterised by pixel centres.

A pixel belongs to the rectangle when its centre lies inside it (the synthesiser's and most
annotation tools' rule). For every width, length and angle the rectangle is drawn at several
random sub-pixel positions; the table gives, per (width, length), the worst per-angle *bias*
(the mean error over positions at one angle: what shifts a frame's mean) and the worst single
reading (what one particle can read: bounded below by the pixel grid itself; a 9.4 px wide
axis-aligned wire covers 9 or 10 whole columns, whatever the estimator).

Run ``python -m wirewatch.stats.accuracy`` for the table in docs/stats.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from wirewatch.stats.descriptors import particle_descriptors

DEFAULT_WIDTHS: tuple[float, ...] = (3.0, 3.7, 5.0, 9.4, 15.0, 30.0)
DEFAULT_LENGTHS: tuple[float, ...] = (20.0, 50.0, 120.0, 200.0)


def rectangle_masks(length: float, width: float, angles_deg: Sequence[float] | np.ndarray, centres: np.ndarray,
                    size: int) -> np.ndarray:
    """(len(angles) * len(centres), size, size) masks: pixel (r, c) is in when its centre (c + 0.5,
    r + 0.5) is inside the rectangle. Angles counter-clockwise on screen (image y down), as
    ``orientation_deg``; ``centres`` (P, 2) rectangle centres (x, y)."""
    centres = np.asarray(centres, np.float64)
    grid = np.arange(size, dtype=np.float64) + 0.5
    dx = grid[None, None, :] - centres[:, 0, None, None]  # (P, 1, size)
    dy = grid[None, :, None] - centres[:, 1, None, None]  # (P, size, 1)
    out = np.empty((len(angles_deg), len(centres), size, size), bool)
    for i, angle in enumerate(angles_deg):  # one angle at a time keeps the float arrays small
        ux, uy = math.cos(math.radians(angle)), -math.sin(math.radians(angle))  # the long axis, y down
        out[i] = (np.abs(dx * ux + dy * uy) <= length / 2) & (np.abs(dy * ux - dx * uy) <= width / 2)
    return out.reshape(-1, size, size)


@dataclass(frozen=True)
class AccuracyRow:
    """Errors (measured - true) for one width and length over all angles and positions."""

    width: float
    length: float
    width_bias_px: float  # the largest |mean error over positions| at any one angle
    length_bias_px: float
    orientation_bias_deg: float
    width_max_px: float  # the largest |error| of any single reading
    length_max_px: float
    orientation_max_deg: float


def rectangle_accuracy(widths: Iterable[float] = DEFAULT_WIDTHS, lengths: Iterable[float] = DEFAULT_LENGTHS,
                       angles_deg: Sequence[float] | None = None, positions: int = 16,
                       seed: int = 0) -> list[AccuracyRow]:
    """One ``AccuracyRow`` per (width, length) with length >= 2 x width; angles default 1..179 by 2."""
    rng = np.random.default_rng(seed)
    angles = np.asarray(angles_deg if angles_deg is not None else np.arange(1.0, 180.0, 2.0), np.float64)
    rows = []
    for width in widths:
        for length in lengths:
            if length < 2 * width:
                continue
            size = math.ceil(length + width) + 6
            centres = size / 2 + rng.uniform(-0.5, 0.5, (positions, 2))
            cols = particle_descriptors(rectangle_masks(length, width, angles, centres, size)).columns
            true_angle = np.repeat(angles, positions)
            err = np.stack((cols["width_px"] - width, cols["length_px"] - length,
                            (cols["orientation_deg"] - true_angle + 90.0) % 180.0 - 90.0))
            bias = np.abs(err.reshape(3, len(angles), positions).mean(axis=2)).max(axis=1)
            worst = np.abs(err).max(axis=1)
            rows.append(AccuracyRow(width, length, *bias.tolist(), *worst.tolist()))
    return rows


def markdown_table(rows: Sequence[AccuracyRow]) -> str:
    lines = ["| width px | length px | width bias px | length bias px | orientation bias deg | "
             "width worst px | length worst px | orientation worst deg |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.width:g} | {r.length:g} | {r.width_bias_px:.2f} | {r.length_bias_px:.2f} | "
              f"{r.orientation_bias_deg:.2f} | {r.width_max_px:.2f} | {r.length_max_px:.2f} | "
              f"{r.orientation_max_deg:.2f} |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    print(markdown_table(rectangle_accuracy()))
