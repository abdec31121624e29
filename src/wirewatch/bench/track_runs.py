"""Simulated in-situ runs with known identities, for the tracking tests and ``bench track`` (a generator: in
``bench/``, not in the runtime's ``track`` package).

Wires grow from a fixed base at their own rate, new wires appear, some dissolve, and the stage drifts
(an integer random walk) so the whole scene, a textured substrate included, moves in the frame. The
detections miss a wire now and then (``miss_prob``): gaps the tracker has to bridge. Growing wires
run into each other, which gives the crossings identity switches are counted at.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SimFrame:
    index: int
    time: float
    image: np.ndarray  # float32 (H, W)
    masks: np.ndarray  # (N, H, W) bool: the detections given to the tracker
    ids: np.ndarray  # (N,) the true identity of each detection
    truth_masks: np.ndarray  # (M, H, W) bool: every wire in view, missed ones included
    truth_ids: np.ndarray  # (M,)
    drift: tuple[int, int]  # cumulative stage drift (dx, dy) in pixels


@dataclass
class _Wire:
    id: int
    bx: float
    by: float
    angle: float
    length: float
    width: float
    rate: float
    birth: int
    death: int


def _rod(size: int, w: _Wire, t: int, vx: int, vy: int) -> np.ndarray:
    """The wire's mask in the view whose origin lies at sample coordinates (vx, vy)."""
    length = w.length + w.rate * (t - w.birth)
    c, s = np.cos(w.angle), np.sin(w.angle)
    ux, uy, nx, ny = c * length, s * length, -s * w.width / 2, c * w.width / 2
    x0, y0 = w.bx - vx, w.by - vy
    pts = np.array([[x0 + nx, y0 + ny], [x0 + ux + nx, y0 + uy + ny], [x0 + ux - nx, y0 + uy - ny],
                    [x0 - nx, y0 - ny]])
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(canvas, np.round(pts * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def simulate_run(*, frames: int = 60, size: int = 256, wires: int = 30, births_per_frame: float = 0.4,
                 death_prob: float = 0.01, growth_px_per_frame: tuple[float, float] = (0.3, 1.5),
                 length_px: tuple[float, float] = (15.0, 60.0), width_px: tuple[float, float] = (3.0, 6.0),
                 drift_px: float = 1.5, miss_prob: float = 0.02, frame_interval_s: float = 10.0,
                 seed: int = 0) -> list[SimFrame]:
    """``frames`` frames of ``size`` px: ``wires`` at the start, Poisson births, per-frame death
    probability, per-wire growth rates, a drift random walk of ``drift_px`` px per frame (s.d.)."""
    rng = np.random.default_rng(seed)
    pad = int(4 * drift_px * np.sqrt(frames)) + 8
    extent = size + 2 * pad
    texture = cv2.GaussianBlur(rng.random((extent, extent)).astype(np.float32), (0, 0), 4)
    texture = (texture - texture.mean()) / (texture.std() + 1e-9) * 0.08
    # the view's origin in sample coordinates: an integer random walk, kept on the textured substrate
    steps = np.round(rng.normal(0, drift_px, size=(frames, 2))).astype(int)
    steps[0] = 0
    views = np.clip(pad + np.cumsum(steps, axis=0), 0, 2 * pad)

    def new_wire(wid: int, birth: int, vx: int, vy: int) -> _Wire:
        return _Wire(wid, vx + float(rng.uniform(10, size - 10)), vy + float(rng.uniform(10, size - 10)),
                     float(rng.uniform(0, np.pi * 2)), float(rng.uniform(*length_px)),
                     float(rng.uniform(*width_px)), float(rng.uniform(*growth_px_per_frame)), birth, frames + 1)

    ws = [new_wire(i + 1, 0, pad, pad) for i in range(wires)]
    next_id = wires + 1
    out: list[SimFrame] = []
    for t in range(frames):
        vx, vy = int(views[t][0]), int(views[t][1])
        if t > 0:
            for _ in range(rng.poisson(births_per_frame)):
                ws.append(new_wire(next_id, t, vx, vy))
                next_id += 1
            for w in ws:
                if w.birth < t < w.death and rng.random() < death_prob:
                    w.death = t
        truth, ids = [], []
        for w in ws:
            if w.birth <= t < w.death:
                mask = _rod(size, w, t, vx, vy)
                if mask.sum() >= 12:  # in view
                    truth.append(mask)
                    ids.append(w.id)
        truth_masks = np.array(truth, dtype=bool).reshape(-1, size, size)
        truth_ids = np.array(ids, dtype=np.int64)
        keep = rng.random(len(ids)) >= miss_prob if t > 0 else np.ones(len(ids), bool)
        image = texture[vy:vy + size, vx:vx + size].copy()
        if len(truth_masks):
            image += 0.6 * truth_masks.sum(axis=0).astype(np.float32)
        image += rng.normal(0, 0.03, image.shape).astype(np.float32)
        out.append(SimFrame(index=t, time=t * frame_interval_s, image=image, masks=truth_masks[keep],
                            ids=truth_ids[keep], truth_masks=truth_masks, truth_ids=truth_ids,
                            drift=(pad - vx, pad - vy)))
    return out
