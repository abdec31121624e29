"""Render one synthetic frame: wires deposited one after another, projected, blurred, noised.

Each wire is rendered analytically on its bounding-box window only: the distance of
every pixel centre (pixel (row r, column c) has its centre at x = c, y = r) to the
wire axis gives a rectangular or hexagonal thickness profile. The wire's mask is
its pixel-centre footprint (thickness > 0) before any blur, so every wire pixel is
in a mask and no mask holds a background pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from wirewatch.synth.config import SynthConfig

CrossSection = Literal["rectangular", "hexagonal"]
_RIPPLE_TABLE = 1025
_POISSON_EXACT_BELOW = 30.0  # expected counts; above, the Gaussian approximation is used (much faster)


@dataclass(frozen=True)
class WireParams:
    """Ground truth of one wire (pixel units; angles in degrees, [0, 180) counter-clockwise on screen)."""

    index: int
    centre: tuple[float, float]  # (x, y) of the chord midpoint
    length: float  # true length along the wire
    projected_length: float  # length seen from above (shorter when tilted)
    width: float  # mean in-plane width
    thickness: float  # material along the beam through the thickest part (tilt included)
    angle_deg: float
    cross_section: CrossSection
    tilt_deg: float  # out-of-plane tilt from resting on earlier wires
    taper: float  # relative width change end to end
    bend: float  # sagitta / length
    branches: int
    neck: bool
    agglomerate: int  # -1 when not in a cluster
    area_px: int  # mask pixels inside the image


@dataclass(frozen=True)
class Sample:
    """One generated frame.

    ``image``: uint8 (H, W) grey, what the PNG holds. ``od``: float32 (H, W) signal before the
    8-bit mapping, in thickness units (``image ~ od / contrast.full_scale * 255``), background,
    blur and noise included. ``thickness``: float32 (H, W) material along the beam summed over
    wires, before blur and noise. ``masks``: bool (N, H, W), one full footprint per wire.
    """

    image: np.ndarray
    od: np.ndarray
    thickness: np.ndarray
    masks: np.ndarray
    wires: list[WireParams]
    seed: int
    windows: tuple[tuple[int, int, int, int], ...] = ()  # per mask (r0, r1, c0, c1): it is False outside


@dataclass(frozen=True)
class _Segment:
    cx: float
    cy: float
    half_length: float
    half_width: float
    thickness: float
    angle_rad: float
    hexagonal: bool
    taper: float = 0.0
    sagitta: float = 0.0  # px
    ripple: tuple[tuple[float, float, float], ...] = ()  # (amplitude, cycles per length, phase)
    neck: tuple[float, float, float] | None = None  # (position in [-1, 1], depth, relative width)

    def reach(self) -> tuple[float, float]:
        """Half extents of the segment's bounding box in x and y."""
        dx, dy = math.cos(self.angle_rad), math.sin(self.angle_rad)
        ripple = 1.0 + sum(abs(a) for a, _, _ in self.ripple)
        side = self.half_width * (1.0 + abs(self.taper) / 2) * ripple + abs(self.sagitta) + 1.0
        return self.half_length * abs(dx) + side * abs(dy), self.half_length * abs(dy) + side * abs(dx)


def _render_segment(seg: _Segment, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thickness (h, w) of one segment on the window with pixel centres ``xs`` (1, w), ``ys`` (h, 1);
    also the axial coordinate s in [-1, 1] along the segment."""
    # Screen convention: counter-clockwise with y down means the axis points to (cos, -sin).
    dx, dy = math.cos(seg.angle_rad), -math.sin(seg.angle_rad)
    rx = xs - seg.cx
    ry = ys - seg.cy
    s = (rx * dx + ry * dy) * (1.0 / seg.half_length)
    u = rx * -dy + ry * dx
    if seg.sagitta:
        u = u - seg.sagitta * (1.0 - s * s)
    half: np.ndarray | float = seg.half_width
    scale: np.ndarray | float = seg.thickness
    if seg.taper or seg.ripple or seg.neck is not None:
        # Taper and necks narrow the whole cross-section (thinner too); edge ripple moves only the edges.
        smooth = 1.0 + seg.taper * 0.5 * s
        if seg.neck is not None:
            pos, depth, rel = seg.neck
            smooth = smooth * (1.0 - depth * np.exp(-(((s - pos) / rel) ** 2)))
        scale = seg.thickness * smooth
        half = seg.half_width * smooth
        if seg.ripple:
            # Tabulate the ripple along the axis once; look it up per pixel (cheaper than interp).
            grid = np.linspace(-1.0, 1.0, _RIPPLE_TABLE)
            ripple = np.ones_like(grid, dtype=np.float32)
            for amp, cycles, phase in seg.ripple:
                ripple += np.float32(amp) * np.sin(math.pi * cycles * grid + phase).astype(np.float32)
            idx = np.clip((s + 1.0) * ((_RIPPLE_TABLE - 1) / 2.0) + 0.5, 0, _RIPPLE_TABLE - 1).astype(np.intp)
            half = half * ripple[idx]
    au = np.abs(u)
    inside = (np.abs(s) <= 1.0) & (au < half)
    if seg.hexagonal:
        # A hexagon lying on a facet: flat top over the middle half, linear flanks to the corners.
        t = scale * np.clip(2.0 * (1.0 - au / np.maximum(half, 1e-6)), 0.0, 1.0)
        t = np.where(inside, t, 0.0)
    else:
        t = np.where(inside, scale, 0.0)
    return t.astype(np.float32), s


def _window(segs: list[_Segment], size: int) -> tuple[int, int, int, int] | None:
    x0 = y0 = math.inf
    x1 = y1 = -math.inf
    for seg in segs:
        rx, ry = seg.reach()
        x0, x1 = min(x0, seg.cx - rx), max(x1, seg.cx + rx)
        y0, y1 = min(y0, seg.cy - ry), max(y1, seg.cy + ry)
    c0, c1 = max(0, math.floor(x0)), min(size, math.ceil(x1) + 1)
    r0, r1 = max(0, math.floor(y0)), min(size, math.ceil(y1) + 1)
    if c1 <= c0 or r1 <= r0:
        return None
    return r0, r1, c0, c1


def _render_wire(segs: list[_Segment], win: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    r0, r1, c0, c1 = win
    xs = np.arange(c0, c1, dtype=np.float32)[None, :]
    ys = np.arange(r0, r1, dtype=np.float32)[:, None]
    t, s_main = _render_segment(segs[0], xs, ys)
    for seg in segs[1:]:  # branches join the trunk; a junction is as thick as the thicker part
        np.maximum(t, _render_segment(seg, xs, ys)[0], out=t)
    return t, s_main


def _smooth_field(rng: np.random.Generator, size: int, cells: int = 4) -> np.ndarray:
    coarse = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _background(cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray | float:
    bg = cfg.background
    n = cfg.size
    angle = rng.uniform(0.0, 2.0 * math.pi)
    field: np.ndarray | float = bg.offset
    if bg.gradient:
        coords = np.arange(n, dtype=np.float32) / max(n - 1, 1) - 0.5
        ramp = math.cos(angle) * coords[None, :] + math.sin(angle) * coords[:, None]
        ramp = ramp / (abs(math.cos(angle)) + abs(math.sin(angle)))  # peak-to-peak exactly 1
        field = field + bg.gradient * (ramp + 0.5)
    if bg.bumps:
        field = field + bg.bumps * _smooth_field(rng, n)
    return field


def _sample_segments(cfg: SynthConfig, rng: np.random.Generator, count: int) -> list[dict]:
    """Draw every wire's parameters up front, in a fixed order (determinism)."""
    w = cfg.wires
    n = cfg.size
    lengths = w.length.sample(rng, count)
    widths = w.width.sample(rng, count)
    ratios = w.thickness_ratio.sample(rng, count)
    hexagonal = rng.random(count) < w.hexagonal_fraction
    angles = w.orientation.sample(rng, count)
    centres = rng.uniform(0.0, n, (count, 2))
    agglomerate = np.full(count, -1)
    ag = w.agglomerates
    n_clusters = ag.count.sample(rng)
    if n_clusters and ag.fraction > 0:
        cluster_centres = rng.uniform(0.15 * n, 0.85 * n, (n_clusters, 2))
        members = rng.random(count) < ag.fraction
        which = rng.integers(0, n_clusters, count)
        offsets = rng.normal(0.0, ag.radius, (count, 2))
        for k in np.flatnonzero(members):
            centres[k] = np.clip(cluster_centres[which[k]] + offsets[k], 0, n - 1)
            agglomerate[k] = int(which[k])
    shape = w.shape
    out = []
    for i in range(count):
        taper = shape.taper.sample(rng) * (1 if rng.random() < 0.5 else -1) if shape.taper else 0.0
        bend = shape.bend.sample(rng) * (1 if rng.random() < 0.5 else -1) if shape.bend else 0.0
        ripple: tuple[tuple[float, float, float], ...] = ()
        if shape.roughness:
            amps = rng.uniform(0.3, 1.0, 3)
            amps = amps / amps.sum() * shape.roughness
            ripple = tuple((float(a), float(rng.uniform(2.0, 12.0)), float(rng.uniform(0, 2 * math.pi)))
                           for a in amps)
        neck = None
        if shape.neck_probability and rng.random() < shape.neck_probability:
            neck = (float(rng.uniform(-0.6, 0.6)), float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.04, 0.1)))
        branches = []
        if shape.branch_probability and rng.random() < shape.branch_probability:
            branches.append((float(rng.uniform(-0.6, 0.6)),  # where on the trunk
                             float(rng.uniform(25.0, 70.0) * (1 if rng.random() < 0.5 else -1)),
                             float(rng.uniform(0.15, 0.4)),  # relative length
                             float(rng.uniform(0.5, 0.8))))  # relative width
        out.append({
            "length": float(lengths[i]), "width": float(widths[i]), "ratio": float(ratios[i]),
            "hexagonal": bool(hexagonal[i]), "angle": float(angles[i]),
            "cx": float(centres[i, 0]), "cy": float(centres[i, 1]), "agglomerate": int(agglomerate[i]),
            "taper": float(taper), "bend": float(bend), "ripple": ripple, "neck": neck, "branches": branches,
            "tilt_sign": 1.0 if rng.random() < 0.5 else -1.0,
        })
    return out


def _segments(p: dict, cos_tilt: float) -> list[_Segment]:
    half_length = p["length"] * cos_tilt / 2.0
    half_width = p["width"] / 2.0
    thickness = p["width"] * p["ratio"] / cos_tilt
    angle = math.radians(p["angle"])
    trunk = _Segment(p["cx"], p["cy"], half_length, half_width, thickness, angle, p["hexagonal"],
                     taper=p["taper"], sagitta=p["bend"] * p["length"], ripple=p["ripple"], neck=p["neck"])
    segs = [trunk]
    for pos, rel_angle, rel_len, rel_w in p["branches"]:
        bx = p["cx"] + math.cos(angle) * pos * half_length
        by = p["cy"] - math.sin(angle) * pos * half_length
        b_angle = angle + math.radians(rel_angle)
        b_half = rel_len * half_length
        segs.append(_Segment(bx + math.cos(b_angle) * b_half, by - math.sin(b_angle) * b_half, b_half,
                             half_width * rel_w, thickness * rel_w, b_angle, p["hexagonal"]))
    return segs


def _placed(p: dict, cos_tilt: float, n: int) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
    """Window, thickness and axial coordinate of wire ``p`` foreshortened by ``cos_tilt`` in an ``n`` px
    frame, or None when it falls outside."""
    segs = _segments(p, cos_tilt)
    win = _window(segs, n)
    return None if win is None else (win, *_render_wire(segs, win))


def generate(config: SynthConfig, seed: int) -> Sample:
    """Render one frame from ``config`` with ``seed`` (same inputs, same arrays)."""
    rng = np.random.default_rng(seed)
    n = config.size
    count = config.wires.count.sample(rng)
    params = _sample_segments(config, rng, count)
    thickness = np.zeros((n, n), np.float32)
    height = np.zeros((n, n), np.float32)  # top surface, for resting wires and SEM contrast
    max_tilt = math.radians(config.wires.max_tilt_deg)
    kept: list[tuple[tuple[int, int, int, int], np.ndarray]] = []
    wires: list[WireParams] = []
    for p in params:
        placed = _placed(p, 1.0, n)
        if placed is None:
            continue
        win, t, s = placed
        r0, r1, c0, c1 = win
        footprint = t > 0
        support = float(height[r0:r1, c0:c1][footprint].max()) if footprint.any() else 0.0
        tilt = 0.0
        if support > 0 and max_tilt > 0:
            # It rests on what lies under it: one end on the substrate, raised over the crossing.
            tilt = min(math.atan(support / max(p["length"] / 2.0, 1e-6)), max_tilt)
            placed = _placed(p, math.cos(tilt), n)
            if placed is None:
                continue
            win, t, s = placed
            r0, r1, c0, c1 = win
            footprint = t > 0
        below = height[r0:r1, c0:c1]
        area = int(footprint.sum())
        if area < config.wires.min_area_px:
            continue
        thickness[r0:r1, c0:c1] += t
        base = math.tan(tilt) * p["length"] / 2.0 * np.clip(p["tilt_sign"] * s + 1.0, 0.0, 2.0) if tilt else 0.0
        np.maximum(below, np.where(footprint, base + t, 0.0), out=below)
        kept.append((win, footprint))
        wires.append(WireParams(
            index=len(wires), centre=(p["cx"], p["cy"]), length=p["length"],
            projected_length=p["length"] * math.cos(tilt), width=p["width"],
            thickness=p["width"] * p["ratio"] / math.cos(tilt), angle_deg=p["angle"],
            cross_section="hexagonal" if p["hexagonal"] else "rectangular", tilt_deg=math.degrees(tilt),
            taper=abs(p["taper"]), bend=abs(p["bend"]), branches=len(p["branches"]), neck=p["neck"] is not None,
            agglomerate=p["agglomerate"], area_px=area))
    masks = np.zeros((len(kept), n, n), bool)
    for i, ((r0, r1, c0, c1), fp) in enumerate(kept):
        masks[i, r0:r1, c0:c1] = fp
    signal = _signal(config, rng, thickness, height)
    image = np.clip(np.rint(signal * 255.0), 0, 255).astype(np.uint8)
    od = (signal * config.contrast.full_scale).astype(np.float32)
    return Sample(image=image, od=od, thickness=thickness, masks=masks, wires=wires, seed=seed,
                  windows=tuple(win for win, _ in kept))


def _shot_noise(rng: np.random.Generator, signal: np.ndarray, photons: float) -> np.ndarray:
    """Poisson counting noise, ``photons`` counts at full scale: exact where few counts are expected,
    the normal approximation N(lam, lam) where many are (same mean and variance; the skewness
    1/sqrt(lam) it drops is below 0.19 there), several times faster on a full frame."""
    lam = np.clip(signal, 0.0, None) * np.float32(photons)
    out = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
    low = lam < _POISSON_EXACT_BELOW
    if low.any():
        out[low] = rng.poisson(lam[low])
    return np.clip(out, 0.0, None) * np.float32(1.0 / photons)


def _signal(cfg: SynthConfig, rng: np.random.Generator, thickness: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Normalised signal (1.0 = grey 255): contrast, background, blur, coarse sampling, noise."""
    n = cfg.size
    c = cfg.contrast
    signal: np.ndarray
    if c.mode == "optical_density":
        signal = thickness * (1.0 / c.full_scale)
    elif c.mode == "bright_field":
        signal = c.bright_level * np.exp(thickness * np.float32(-1.0 / c.full_scale))
    else:
        # SEM: secondary electrons from the top surface; steep slopes (edges) emit more.
        gy, gx = np.gradient(height)
        slope = np.sqrt(gx * gx + gy * gy)
        signal = c.sem_material * (height > 0) + c.sem_edge * np.clip(slope, 0.0, 1.0)
        signal = signal.astype(np.float32)
    signal = signal + _background(cfg, rng)
    if cfg.blur_sigma > 0:
        signal = cv2.GaussianBlur(signal.astype(np.float32), (0, 0), cfg.blur_sigma,
                                  borderType=cv2.BORDER_REFLECT)
    coarse = max(1, round(n / cfg.coarse_factor))
    if cfg.coarse_factor > 1:
        signal = cv2.resize(signal, (coarse, coarse), interpolation=cv2.INTER_AREA)
    noise = cfg.noise
    if noise.photons is not None:
        signal = _shot_noise(rng, signal, noise.photons)
    if noise.gaussian_sigma:
        signal = signal + rng.standard_normal(signal.shape, dtype=np.float32) * (noise.gaussian_sigma / 255.0)
    if cfg.coarse_factor > 1:
        signal = cv2.resize(signal, (n, n), interpolation=cv2.INTER_CUBIC)
    return np.asarray(signal, dtype=np.float32)
