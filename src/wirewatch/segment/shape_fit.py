"""Shape-fitted masks: replace a detection's pasted mask by the rod that best explains its probabilities.

A nanowire lying on the substrate covers a rod: for the paper's prismatic wires (the default preset) a
rotated rectangle, tilted or not; for real ones often slightly bent or tapered. The mask head's 28 x 28 grid
blurs the edges over a cell (5-10 px for a 140 px wire) and leaks onto, or is cut by, a wire it crosses. A fit
pools the edge evidence of the whole wire, so it places edges to a fraction of a pixel where the free mask is
a pixel or so off, and a Cauchy loss lets a leak onto a crossing wire weigh little.

``mask_shape``:
- ``free``: the pasted mask (the default);
- ``rect``: a rotated rectangle (5 parameters), for samples of straight prisms;
- ``rod``: the synthesiser's own shape model, a rectangle whose axis bends as a parabola (sagitta) and whose
  width changes linearly along it (taper), 7 parameters.

Least squares between the pasted probability window and the shape with sigmoid edges ``EDGE_SOFTNESS`` px
wide, over the pixels within ``NEAR_PX`` of the free mask, from the free mask's minimum-area rectangle,
analytic Jacobian (scipy ``least_squares``). The shape is rasterised with the synthesiser's footprint rule
(pixel centres strictly inside the half-width, within the half-length). A mask the shape explains poorly
(IoU with the free mask below ``GUARD_IOU``: a branched or strongly bent wire, a clump) keeps its free mask.

Measured with the shipped model (docs/model.md, "Shape-fitted masks"): on the 200 default-preset evaluation
frames mask AP 0.735 free, 0.782 ``rect``; on 100 frames of wires with the realistic preset's shapes (taper,
bend, rough edges) ``rect`` costs mask AP (0.440 -> 0.321) because it straightens them, ``rod`` does not.
Each fit costs ~10 ms (``rect``) or ~15 ms (``rod``) per detection on this project's 2-core host: opt-in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from wirewatch.errors import InputError

MASK_SHAPES = ("free", "rect", "rod")
GUARD_IOU = 0.6  # below this IoU with the free mask, the fitted shape is not the wire's
EDGE_SOFTNESS = 1.0  # px: width of the fitted shape's sigmoid edges
NEAR_PX = 5  # pixels this far from the free mask take part in the fit (room to move an edge)
MIN_PIXELS = 15  # smaller free masks are left as they are
ROBUST_SCALE = 1.0  # residual (probability) above which the Cauchy loss discounts a pixel
MAX_TAPER = 0.9  # |relative width change end to end| the rod may take


@dataclass(frozen=True)
class Rod:
    """A rod in window coordinates (pixel ``i`` centred at ``i``): centre, ``angle`` of the long axis in
    radians (along (cos, sin)), half length and half width; ``sagitta``: the axis's bend, px off the chord at
    the middle; ``taper``: relative width change from one end to the other. sagitta = taper = 0: a rectangle."""

    cx: float
    cy: float
    angle: float
    half_length: float
    half_width: float
    sagitta: float = 0.0
    taper: float = 0.0

    def params(self) -> np.ndarray:
        return np.array([self.cx, self.cy, self.angle, self.half_length, self.half_width, self.sagitta, self.taper])


def check_mask_shape(shape: object) -> str:
    """The ``mask_shape`` option, else an error naming the allowed values."""
    if shape not in MASK_SHAPES:
        raise InputError(f"mask_shape must be one of {', '.join(MASK_SHAPES)} (free: the pasted mask; rect: a "
                         f"fitted rectangle, for straight prisms; rod: a fitted bent, tapered rod), got {shape!r}")
    return str(shape)


@dataclass(frozen=True)
class _Geometry:
    """Points seen from a rod: along-axis ``t``, across-axis ``u0`` (from the chord) and ``u`` (from the bent
    axis), ``sn = t / half length``, the rod's half-width there; the rest is what the Jacobian reuses."""

    c: float
    s: float
    sagitta: float
    taper: float
    t: np.ndarray
    u0: np.ndarray
    sn: np.ndarray
    u: np.ndarray
    half: np.ndarray


def _geometry(p: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> _Geometry:
    """``p``: cx, cy, angle, half length, half width[, sagitta, taper] (a rectangle without the last two)."""
    sagitta, taper = (float(p[5]), float(p[6])) if len(p) > 5 else (0.0, 0.0)
    c, s = math.cos(p[2]), math.sin(p[2])
    rx, ry = gx - p[0], gy - p[1]
    t = rx * c + ry * s
    u0 = -rx * s + ry * c
    sn = t / max(p[3], 1e-6)  # -1 .. 1 along the rod
    return _Geometry(c=c, s=s, sagitta=sagitta, taper=taper, t=t, u0=u0, sn=sn,
                     u=u0 - sagitta * (1.0 - sn * sn), half=p[4] * (1.0 + taper * 0.5 * sn))


def soft_rod(p: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """The soft-edged rod ``p`` at the points (gx, gy)."""
    g = _geometry(p, gx, gy)
    return expit((g.half - np.abs(g.u)) / EDGE_SOFTNESS) * expit((p[3] - np.abs(g.t)) / EDGE_SOFTNESS)


def _jacobian(p: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """d soft_rod / d p, (points, len(p)): analytic, several times cheaper than finite differences."""
    g = _geometry(p, gx, gy)
    c, s, t, u0, sn, sag, tap = g.c, g.s, g.t, g.u0, g.sn, g.sagitta, g.taper
    hl, hw = p[3], p[4]
    across = expit((g.half - np.abs(g.u)) / EDGE_SOFTNESS)
    along = expit((hl - np.abs(t)) / EDGE_SOFTNESS)
    d_across = across * (1 - across) * along / EDGE_SOFTNESS  # d model / d (half - |u|)
    d_along = along * (1 - along) * across / EDGE_SOFTNESS  # d model / d (half length - |t|)
    st, su = np.sign(t), np.sign(g.u)
    zero = np.zeros_like(t)
    # d t, d u0 and d sn for each parameter (cx, cy, angle, half length, half width, sagitta, taper)
    dt = [zero - c, zero - s, u0, zero, zero, zero, zero]
    du0 = [zero + s, zero - c, -t, zero, zero, zero, zero]
    hl_safe = max(hl, 1e-6)
    dsn = [d / hl_safe for d in dt]
    dsn[3] = -t / (hl_safe * hl_safe)
    jac = np.empty((len(t), len(p)))
    for k in range(len(p)):
        du = du0[k] + sag * 2.0 * sn * dsn[k] - ((1.0 - sn * sn) if k == 5 else 0.0)
        dhalf = (1.0 + tap * 0.5 * sn) * (k == 4) + hw * 0.5 * (tap * dsn[k] + (sn if k == 6 else 0.0))
        jac[:, k] = d_across * (dhalf - su * du) + d_along * ((k == 3) - st * dt[k])
    return jac


def fit_rod(window: np.ndarray, threshold: float = 0.5, bent: bool = False) -> Rod | None:
    """The rectangle (``bent=False``) or bent, tapered rod that best explains a pasted probability window, or
    None when its free mask (window >= ``threshold``) is too small or the fit ends on no finite shape."""
    free = window >= threshold
    ys, xs = np.nonzero(free)
    if len(xs) < MIN_PIXELS:
        return None
    (cx, cy), (w, h), angle = cv2.minAreaRect(np.stack([xs, ys], 1).astype(np.float32))
    if w < h:
        w, h, angle = h, w, angle + 90.0
    p0 = [cx, cy, math.radians(angle), max(w, 2.0) / 2, max(h, 1.0) / 2] + ([0.0, 0.0] if bent else [])
    size = 2 * NEAR_PX + 1
    near = cv2.dilate(free.astype(np.uint8), np.ones((size, size), np.uint8)).astype(bool)
    gy, gx = np.nonzero(near)
    gx, gy = gx.astype(np.float64), gy.astype(np.float64)
    target = window[near].astype(np.float64)
    # Only the rod's taper needs a bound (a width that changes sign is no rod); bounds change scipy's trf
    # steps, so the rectangle is fitted without any.
    bounds = ([-np.inf] * 6 + [-MAX_TAPER], [np.inf] * 6 + [MAX_TAPER]) if bent else (-np.inf, np.inf)
    result = least_squares(lambda p: soft_rod(p, gx, gy) - target, np.array(p0), jac=lambda p: _jacobian(p, gx, gy),
                           bounds=bounds, method="trf", loss="cauchy", f_scale=ROBUST_SCALE, max_nfev=100)
    p = result.x
    if not np.all(np.isfinite(p)) or p[3] <= 0 or p[4] <= 0:
        return None
    return Rod(*map(float, p))


def rod_mask(rod: Rod, shape: tuple[int, int]) -> np.ndarray:
    """Pixels of a (rows, cols) window whose centres lie in ``rod`` (|u| < half width, |t| <= half length,
    the synthesiser's footprint rule)."""
    gy, gx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    g = _geometry(rod.params(), gx, gy)
    return (np.abs(g.t) <= rod.half_length) & (np.abs(g.u) < g.half)


def shaped_mask(window: np.ndarray, threshold: float, shape: str) -> np.ndarray:
    """A pasted probability window -> its bool mask: as pasted (``free``), or the fitted rectangle (``rect``)
    or rod (``rod``) where that explains the free mask (IoU >= ``GUARD_IOU``)."""
    free = window >= threshold
    if shape == "free":
        return free
    rod = fit_rod(window, threshold, bent=shape == "rod")
    if rod is None:
        return free
    fitted = rod_mask(rod, window.shape)
    union = np.count_nonzero(fitted | free)
    if union == 0 or np.count_nonzero(fitted & free) / union < GUARD_IOU:
        return free
    return fitted
