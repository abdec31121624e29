"""Per-frame aggregates of the particle table (names fixed in docs/CONTRACTS.md)."""

from __future__ import annotations

import math

import numpy as np

from wirewatch.stats.descriptors import ParticleTable

# Descriptors summarised as D_mean, D_median, D_p10, D_p90; the *_nm ones only with a pixel size.
SUMMARISED: tuple[str, ...] = ("area_px", "length_px", "width_px", "aspect_ratio", "od_mean", "overlap_fraction")
SUMMARISED_NM: tuple[str, ...] = ("area_nm2", "length_nm", "width_nm")
SUMMARY_SUFFIXES: tuple[str, ...] = ("mean", "median", "p10", "p90")


def aggregate_names(with_pixel_size: bool) -> tuple[str, ...]:
    """Every aggregate key ``frame_aggregates`` writes, in a stable order (CSV columns, dashboards)."""
    names = ["particle_count", "coverage_fraction", "orientation_mean_deg", "orientation_order"]
    if with_pixel_size:
        names.append("number_density_per_um2")
    for d in SUMMARISED + (SUMMARISED_NM if with_pixel_size else ()):
        names.extend(f"{d}_{s}" for s in SUMMARY_SUFFIXES)
    names.append("empty_masks_skipped")
    return tuple(names)


def summarise(values: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, median, 10th and 90th percentile, ignoring NaN; all NaN when nothing is left."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (math.nan,) * 4
    p10, p50, p90 = np.percentile(v, [10.0, 50.0, 90.0])
    return float(v.mean()), float(p50), float(p10), float(p90)


def axial_orientation(orientation_deg: np.ndarray) -> tuple[float, float]:
    """Mean direction in [0, 180) and order parameter S = |mean exp(2i theta)| of axial angles.

    Doubling the angle makes 0 and 180 deg the same direction; S is 1 for parallel particles and
    near 0 for isotropic ones. Both NaN without particles.
    """
    theta = np.radians(np.asarray(orientation_deg, np.float64))
    if theta.size == 0:
        return math.nan, math.nan
    z = np.exp(2j * theta).mean()
    mean_deg = math.degrees(0.5 * math.atan2(z.imag, z.real)) % 180.0
    return (0.0 if mean_deg >= 180.0 else mean_deg), float(abs(z))


def frame_aggregates(table: ParticleTable, pixel_size_nm: float | None = None) -> dict[str, float]:
    """The per-frame statistics of one particle table (NaN where undefined)."""
    h, w = table.frame_shape
    cols = table.columns
    count = len(table)
    out: dict[str, float] = {
        "particle_count": float(count),
        "coverage_fraction": table.covered_px / (h * w) if h * w else math.nan,
    }
    out["orientation_mean_deg"], out["orientation_order"] = axial_orientation(cols["orientation_deg"])
    if pixel_size_nm is not None:
        frame_um2 = h * w * (pixel_size_nm / 1000.0) ** 2
        out["number_density_per_um2"] = count / frame_um2 if frame_um2 > 0 else math.nan
    names = SUMMARISED + (SUMMARISED_NM if pixel_size_nm is not None else ())
    out.update(_summaries(cols, names, count))
    out["empty_masks_skipped"] = float(table.empty_masks_skipped)
    return out


def _summaries(cols: dict[str, np.ndarray], names: tuple[str, ...], count: int) -> dict[str, float]:
    """D_mean/median/p10/p90 for every descriptor, with one percentile call for all defined columns."""
    out = {f"{d}_{s}": math.nan for d in names for s in SUMMARY_SUFFIXES}
    if count == 0:
        return out
    # A column is either fully defined or fully NaN (no image / no pixel size) in one frame;
    # the odd partly-NaN column goes through the NaN-aware path.
    whole = [d for d in names if not np.isnan(cols[d]).any()]
    partial = [d for d in names if d not in whole and not np.isnan(cols[d]).all()]
    if whole:
        stacked = np.stack([np.asarray(cols[d], np.float64) for d in whole])
        means = stacked.mean(axis=1)
        p10, p50, p90 = np.percentile(stacked, [10.0, 50.0, 90.0], axis=1)
        for i, d in enumerate(whole):
            out.update({f"{d}_mean": float(means[i]), f"{d}_median": float(p50[i]),
                        f"{d}_p10": float(p10[i]), f"{d}_p90": float(p90[i])})
    for d in partial:
        out.update(zip((f"{d}_{s}" for s in SUMMARY_SUFFIXES), summarise(cols[d]), strict=True))
    return out
