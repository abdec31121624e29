"""``Tracker``: each frame's particles associated with the tracks of the previous frames.

One frame at a time (online, as the daemon sees frames):

1. Stage drift: the frame-to-frame shift by phase correlation (``drift.DriftEstimator``), summed
   into a running offset, so a track's last mask and centroid are moved to where they are now.
2. Mask IoU of every particle against every live track (seen within ``max_gap_frames``) on every
   ``grid``-th pixel, all pairs at once: the tracks' sample cells are stamped into one grid of
   owners (cells two tracks share, found as stamps overwritten, are joined separately by sorting), each particle
   cell looks its owner up, and one ``bincount`` of (particle, track) keys gives every
   intersection. No loop over pairs; about 4x cheaper than the same product with ``scipy.sparse``.
3. Cost ``(1 - IoU) + distance_weight x centroid distance / max_distance_px + gap_penalty x frames
   missed`` for pairs that overlap (IoU >= ``min_iou``) or lie within ``max_distance_px``;
   ``scipy.optimize.linear_sum_assignment`` picks the cheapest one-to-one matching.
4. Unmatched particles start tracks (births); tracks unseen for more than ``max_gap_frames``
   frames end (deaths, counted in the frame where the gap becomes too long).

Why scipy and not laptrack: laptrack solves the LAP over a whole recorded movie (and bridges gaps in
a second pass over all segments), with costs from point coordinates; the daemon needs an answer per
frame as frames arrive, and the cost here is mask overlap, which laptrack's point-distance costs do
not express. The frame-by-frame LAP with a gap window is the same algorithm restricted to what is
known so far.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .config import TrackConfig
from .drift import DriftEstimator

BIG = 1e6


@dataclass
class _Track:
    id: int
    cells_y: np.ndarray  # mask sample cells (grid units) when last seen
    cells_x: np.ndarray
    cx: float
    cy: float
    drift: tuple[float, float]  # running drift offset when last seen
    seen: int  # frame index
    time: float
    length_px: float
    length_nm: float


@dataclass(frozen=True)
class TrackUpdate:
    """The result for one frame: a track id per particle row and the frame's tracking statistics."""

    track_ids: np.ndarray  # int64, one per particle row
    births: int
    deaths: int
    growth_px_per_frame: np.ndarray  # one per particle matched to a track seen before
    growth_px_per_s: np.ndarray
    growth_nm_per_frame: np.ndarray
    growth_nm_per_s: np.ndarray
    drift: tuple[float, float]  # this frame's shift (dx, dy) in pixels
    aggregates: dict[str, float] = field(default_factory=dict)


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else math.nan


class Tracker:
    def __init__(self, config: TrackConfig | None = None) -> None:
        self.config = config if config is not None else TrackConfig(enabled=True)
        self._drift = DriftEstimator(self.config.max_drift_px, refine=self.config.drift_refine)
        self._next_id = 1
        self._owner: np.ndarray | None = None  # cell -> track index scratch grid, reused
        self._shared = np.zeros(0, dtype=bool)  # cells two tracks cover, scratch grid
        self.reset()

    def reset(self) -> None:
        """A new series: no tracks (ids keep counting, so an id is never reused in one process)."""
        self._tracks: list[_Track] = []
        self._frame = -1
        self._offset = (0.0, 0.0)
        self._drift.reset()
        self._shape: tuple[int, int] | None = None

    @property
    def live_tracks(self) -> int:
        return len(self._tracks)

    def update(self, masks: np.ndarray, particles: Mapping[str, np.ndarray], *, image: np.ndarray | None = None,
               time: float = math.nan) -> TrackUpdate:
        """``masks``: the frame's (N, H, W) bool stack; ``particles``: ``FrameStats.particles`` of it (rows
        point at masks through ``mask_index``); ``image``: the frame, for drift; ``time``: Unix s."""
        cfg = self.config
        g = cfg.grid
        shape = (int(masks.shape[1]), int(masks.shape[2]))
        if self._shape is not None and shape != self._shape:
            self.reset()
        first = self._frame < 0
        self._shape = shape
        self._frame += 1
        shift = self._drift.shift(image) if (cfg.drift and image is not None) else (0.0, 0.0)
        self._offset = (self._offset[0] + shift[0], self._offset[1] + shift[1])
        hg, wg = -(-shape[0] // g), -(-shape[1] // g)

        n = len(particles.get("mask_index", ()))
        cells = self._all_cells(masks, particles, n, g)
        cx = np.asarray(particles.get("centroid_x", np.zeros(n)), dtype=np.float64)
        cy = np.asarray(particles.get("centroid_y", np.zeros(n)), dtype=np.float64)
        length_px = np.asarray(particles.get("length_px", np.full(n, np.nan)), dtype=np.float64)
        length_nm = np.asarray(particles.get("length_nm", np.full(n, np.nan)), dtype=np.float64)

        tracks = self._tracks
        m = len(tracks)
        # per track: cx, cy, drift x, drift y, frame seen, time seen, length px, length nm
        tv = np.array([(t.cx, t.cy, t.drift[0], t.drift[1], t.seen, t.time, t.length_px, t.length_nm)
                       for t in tracks], dtype=np.float64).reshape(m, 8)
        pi = ti = np.zeros(0, dtype=np.int64)
        if n and m:
            cost = self._cost(cells, cx, cy, tracks, tv, g, hg, wg)
            pi, ti = linear_sum_assignment(cost)
            ok = cost[pi, ti] < BIG
            pi, ti = pi[ok], ti[ok]
        # growth of every matched particle since its track was last seen (vectorised)
        frames = self._frame - tv[ti, 4]
        dt = time - tv[ti, 5]
        dl_px, dl_nm = length_px[pi] - tv[ti, 6], length_nm[pi] - tv[ti, 7]
        with np.errstate(divide="ignore", invalid="ignore"):
            per_s = np.where(dt > 0, 1.0 / np.where(dt > 0, dt, 1.0), np.nan)
            rates = np.stack([dl_px / frames, dl_px * per_s, dl_nm / frames, dl_nm * per_s], axis=1)

        ids = np.empty(n, dtype=np.int64)
        cxl, cyl, lpl, lnl = cx.tolist(), cy.tolist(), length_px.tolist(), length_nm.tolist()
        offset, frame = self._offset, self._frame
        for i, k in zip(pi.tolist(), ti.tolist(), strict=True):
            tr = tracks[k]
            tr.cells_y, tr.cells_x = cells[i]
            tr.cx, tr.cy, tr.drift, tr.seen, tr.time = cxl[i], cyl[i], offset, frame, time
            tr.length_px, tr.length_nm = lpl[i], lnl[i]
            ids[i] = tr.id
        new = np.ones(n, dtype=bool)
        new[pi] = False
        births = 0
        for i in np.flatnonzero(new).tolist():
            tracks.append(_Track(self._next_id, cells[i][0], cells[i][1], cxl[i], cyl[i], offset, frame, time,
                                 lpl[i], lnl[i]))
            ids[i] = self._next_id
            self._next_id += 1
            births += 0 if first else 1
        alive = [tr for tr in tracks if self._frame - tr.seen <= cfg.max_gap_frames]
        deaths = len(tracks) - len(alive)
        self._tracks = alive
        update = TrackUpdate(track_ids=ids, births=births, deaths=deaths, growth_px_per_frame=rates[:, 0],
                             growth_px_per_s=rates[:, 1], growth_nm_per_frame=rates[:, 2],
                             growth_nm_per_s=rates[:, 3], drift=shift)
        update.aggregates.update({
            "births": float(births), "deaths": float(deaths), "tracks_live": float(len(alive)),
            "growth_px_per_frame_median": _median(rates[:, 0]), "growth_px_per_s_median": _median(rates[:, 1]),
            "drift_x_px": shift[0], "drift_y_px": shift[1]})
        if np.isfinite(length_nm).any():
            update.aggregates["growth_nm_per_frame_median"] = _median(rates[:, 2])
            update.aggregates["growth_nm_per_s_median"] = _median(rates[:, 3])
        return update

    @staticmethod
    def _all_cells(masks: np.ndarray, particles: Mapping[str, np.ndarray], n: int,
                   g: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each particle's mask pixels on the sampling grid (every g-th row and column), in grid units;
        only its bounding box is read."""
        cols = [np.asarray(particles[k]).astype(np.int64).tolist()
                for k in ("mask_index", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "centroid_x", "centroid_y")]
        out = []
        for k, x0, y0, x1, y1, cxi, cyi in zip(*cols, strict=True):
            gy0, gx0 = -(-y0 // g), -(-x0 // g)
            yy, xx = masks[k, gy0 * g:y1:g, gx0 * g:x1:g].nonzero()
            if yy.size == 0:  # a mask thinner than the grid: keep its centre cell
                out.append((np.array([cyi // g]), np.array([cxi // g])))
            else:
                out.append((yy + gy0, xx + gx0))
        return out

    def _intersections(self, a_rows: np.ndarray, a_flat: np.ndarray, b_rows: np.ndarray, b_flat: np.ndarray,
                       n: int, m: int, cells: int) -> np.ndarray:
        """(n, m) counts of shared cells between particle and track cell lists (a track's cells are unique)."""
        if self._owner is None or self._owner.size != cells:
            self._owner = np.full(cells, -1, dtype=np.int32)
            self._shared = np.zeros(cells, dtype=bool)
        owner, flag = self._owner, self._shared
        owner[b_flat] = b_rows  # the last track stamped wins a cell two tracks cover...
        lost = owner[b_flat] != b_rows  # ...so the entries it overwrote mark the shared cells
        crossings = bool(lost.any())
        if crossings:
            flag[b_flat[lost]] = True
        a_owner = owner[a_flat]
        single = a_owner >= 0
        if crossings:
            a_shared = flag[a_flat]
            single &= ~a_shared
        keys = [a_rows[single] * m + a_owner[single]]
        if crossings and a_shared.any():  # particle cells that two or more tracks cover: joined by sorting
            b_multi = flag[b_flat]
            bf, br = b_flat[b_multi], b_rows[b_multi]
            order = np.argsort(bf, kind="stable")
            bf, br = bf[order], br[order]
            af, ar = a_flat[a_shared], a_rows[a_shared]
            lo, hi = np.searchsorted(bf, af, "left"), np.searchsorted(bf, af, "right")
            reps = hi - lo
            starts = np.repeat(lo - np.cumsum(reps) + reps, reps) + np.arange(int(reps.sum()))
            keys.append(np.repeat(ar, reps) * m + br[starts])
        if crossings:
            flag[b_flat[lost]] = False
        owner[b_flat] = -1  # leave the grids clean for the next frame
        return np.bincount(np.concatenate(keys), minlength=n * m).reshape(n, m)

    def _cost(self, cells: list[tuple[np.ndarray, np.ndarray]], cx: np.ndarray, cy: np.ndarray,
              tracks: list[_Track], tv: np.ndarray, g: int, hg: int, wg: int) -> np.ndarray:
        cfg = self.config
        n, m = len(cells), len(tracks)
        ox, oy = self._offset
        lens = np.fromiter((c[0].size for c in cells), dtype=np.int64, count=n)
        a_rows = np.repeat(np.arange(n), lens)
        a_flat = np.concatenate([c[0] for c in cells]) * wg + np.concatenate([c[1] for c in cells])
        # tracks' cells, moved by the drift since each was seen
        sx = np.round((ox - tv[:, 2]) / g).astype(np.int64)
        sy = np.round((oy - tv[:, 3]) / g).astype(np.int64)
        tl = np.fromiter((t.cells_y.size for t in tracks), dtype=np.int64, count=m)
        ty = np.concatenate([t.cells_y for t in tracks]) + np.repeat(sy, tl)
        tx = np.concatenate([t.cells_x for t in tracks]) + np.repeat(sx, tl)
        inside = (ty >= 0) & (ty < hg) & (tx >= 0) & (tx < wg)
        b_rows = np.repeat(np.arange(m), tl)[inside]
        b_flat = ty[inside] * wg + tx[inside]
        inter = self._intersections(a_rows, a_flat, b_rows, b_flat, n, m, hg * wg)
        area_b = np.bincount(b_rows, minlength=m)
        iou = inter / (lens[:, None] + area_b[None, :] - inter)  # every particle has a cell: never 0 / 0
        px = tv[:, 0] + ox - tv[:, 2]
        py = tv[:, 1] + oy - tv[:, 3]
        d2 = np.square(cx[:, None] - px[None, :]) + np.square(cy[:, None] - py[None, :])
        reach = cfg.max_distance_px ** 2
        cost = 1.0 - iou
        cost += (cfg.distance_weight / cfg.max_distance_px) * np.sqrt(np.minimum(d2, reach))
        cost += cfg.gap_penalty * (self._frame - tv[:, 4] - 1)[None, :]
        cost[(iou < max(cfg.min_iou, 1e-9)) & (d2 > reach)] = BIG
        return cost
