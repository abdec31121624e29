"""Run a segmenter on frames larger than it should see: resize, or tile and merge.

(Here rather than in ``wirewatch.preprocess``, where it began: it wraps a ``Segmenter`` and uses this
package's magnification estimate, and the stages import none of one another; ``preprocess.max_side``,
``fit``, ``tile_*`` and ``merge_overlap`` configure it through ``load_fitted_segmenter`` or the daemon.)

``FitSegmenter`` wraps any ``Segmenter`` and is itself one. Frames whose longer side is at
most ``max_side`` pass through unchanged. Larger frames are either resized down (one pass,
masks scaled back up) or cut into overlapping tiles whose detections are pasted into frame
coordinates and merged where a wire was seen by two tiles.

``scale`` (``segment.options.scale``: ``auto`` | a factor | ``none``) first resizes the frame so that its
wires are as wide as the model's training wires (``wirewatch.segment.scale``); a frame made larger than
``max_side`` by that is tiled (resizing it back down would undo the factor). Masks and boxes always come
back in the frame's own pixels.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from wirewatch.coco import boxes_of
from wirewatch.segment.base import Segmenter
from wirewatch.segment.scale import (
    RunningWidth,
    ScaleOption,
    describe_coverage,
    estimate_wire_width,
    held_factor,
    multi_factors,
    parse_polarity,
    parse_scale,
    split_scale_options,
    wires_are_dark,
)
from wirewatch.types import Detections

log = logging.getLogger(__name__)
MIN_SCALED_SIDE = 64  # a factor never makes the frame's shorter side smaller than this
DEFAULT_MAX_SIDE = 1024  # preprocess.max_side's default (tests/unit/test_scale.py checks they agree)


class FitSettings(Protocol):
    """What the wrapper reads from the ``preprocess`` section (``wirewatch.preprocess.PreprocessConfig``)."""

    @property
    def max_side(self) -> int | None: ...
    @property
    def fit(self) -> Literal["resize", "tile"]: ...
    @property
    def tile_size(self) -> int: ...
    @property
    def tile_overlap(self) -> int: ...
    @property
    def merge_overlap(self) -> float: ...


class FitSegmenter:
    """A ``Segmenter`` that resizes or tiles large frames for the wrapped one."""

    def __init__(self, inner: Segmenter, *, max_side: int | None, mode: Literal["resize", "tile"] = "resize",
                 tile_size: int = 512, tile_overlap: int = 64, merge_overlap: float = 0.5,
                 max_detections: int | None = None, scale: ScaleOption = None, scale_window: int = 1,
                 pixel_size_nm: float | None = None, polarity: str = "bright") -> None:
        self.inner = inner
        self.scale = parse_scale(scale)
        self.polarity = parse_polarity(polarity)
        if scale_window < 1:
            from wirewatch.errors import InputError

            raise InputError(f"scale_window must be at least 1 frame, got {scale_window}")
        # scale auto on a stream: the median of the last scale_window frames' widths sets the factor, so that
        # one frame with few wires does not change the resize of a steady series
        self.scale_window = scale_window
        self._widths = RunningWidth(scale_window)
        self._held: float | None = None  # the factor scale auto applied last (held_factor's hysteresis)
        self._lock = threading.Lock()
        self.pixel_size_nm = pixel_size_nm
        self.last_width_px = math.nan  # the latest estimate (frame pixels), for logs and benchmarks
        self.last_factor = 1.0
        self._logged_factor: float | None = None
        self.max_detections = max_detections
        self.name = inner.name
        self.max_side = max_side
        self.mode = mode
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self.merge_overlap = merge_overlap

    def segment(self, image: np.ndarray) -> Detections:
        if self.polarity != "bright" and wires_are_dark(image, self.polarity):
            image = np.float32(1.0) - image  # dark wires on a bright field: the model knows bright wires
        if self.scale == "multi":
            return self._multi(image)
        factor = self.factor_for(image)
        if factor == 1.0:
            return self._fit(image)
        return self._scaled(image, factor)

    def _multi(self, image: np.ndarray) -> Detections:
        """``scale: multi``: one pass per factor the frame's spread of widths asks for, merged like the tiles'
        detections (a wire found at two scales is kept once, the better-scored mask)."""
        estimate = estimate_wire_width(image)
        self.last_width_px = estimate.width_px
        factors = [max(f, MIN_SCALED_SIDE / max(1, min(image.shape))) for f in multi_factors(estimate)]
        self.last_factor = factors[0]
        if len(factors) == 1:
            return self._fit(image) if abs(factors[0] - 1.0) < 1e-6 else self._scaled(image, factors[0])
        passes = [self._fit(image) if abs(f - 1.0) < 1e-6 else self._scaled(image, f) for f in factors]
        return self._capped(merge_passes(passes, image.shape, self.merge_overlap))

    def factor_for(self, image: np.ndarray) -> float:
        """The resize ``scale`` asks for on this frame (1.0: as given), kept within MIN_SCALED_SIDE."""
        if self.scale is None:
            return 1.0
        if self.scale == "auto":
            width = estimate_wire_width(image).width_px
            self.last_width_px = width
            with self._lock:  # several frames may be in flight at once (segmenters with max_in_flight > 1)
                typical = self._widths.add(width)
                # hysteresis: a steady series keeps its factor even when its typical width sits at a bin's edge
                # (once the window is full: the first frames' factor rests on too few widths to hold). Only on a
                # stream (scale_window > 1): with a window of one frame the frames are independent (evaluate,
                # segment, an upload), and one frame's factor must not depend on the frame before it
                held = self._held if self._widths.full and self.scale_window > 1 else None
                factor = held_factor(typical, held)
                self._held = factor if math.isfinite(typical) else self._held
        else:
            factor = float(self.scale)
        factor = max(factor, MIN_SCALED_SIDE / max(1, min(image.shape)))
        factor = 1.0 if abs(factor - 1.0) < 1e-6 else factor
        if factor != self._logged_factor:
            log.info("scale %s: resize x%.3g (typical wire width %.3g px); %s", self.scale, factor,
                     self.last_width_px, describe_coverage(self.pixel_size_nm, factor))
            self._logged_factor = factor
        self.last_factor = factor
        return factor

    def _scaled(self, image: np.ndarray, factor: float) -> Detections:
        """One pass on the frame resized by ``factor``; masks and boxes mapped back to the frame's pixels."""
        h, w = image.shape
        sw, sh = max(1, round(w * factor)), max(1, round(h * factor))
        scaled = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        if self.max_side is not None and max(sh, sw) > self.max_side:
            det = self._capped(self._tiled(scaled))
        else:
            det = self._fit(scaled)
        return rescale_detections(det, (h, w))

    def _fit(self, image: np.ndarray) -> Detections:
        h, w = image.shape
        if self.max_side is None or max(h, w) <= self.max_side:
            return self._capped(self.inner.segment(image))
        if self.mode == "tile":
            return self._capped(self._tiled(image))
        return self._resized(image)

    def _capped(self, det: Detections) -> Detections:
        """Keep the ``max_detections`` best-scoring detections: full-frame masks cost N x H x W bytes,
        and a noisy frame must not turn into thousands of them."""
        if self.max_detections is None or len(det) <= self.max_detections:
            return det
        keep = np.sort(np.argsort(-det.scores, kind="stable")[:self.max_detections])
        return det.select(keep)

    def _resized(self, image: np.ndarray) -> Detections:
        h, w = image.shape
        assert self.max_side is not None
        s = self.max_side / max(h, w)
        small_w, small_h = max(1, round(w * s)), max(1, round(h * s))
        small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        det = self._capped(self.inner.segment(small))
        if len(det) == 0:
            return Detections.empty((h, w))
        masks = np.zeros((len(det), h, w), bool)
        for i, m in enumerate(det.masks):
            masks[i] = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        factors = np.asarray([w / small_w, h / small_h, w / small_w, h / small_h], np.float32)
        boxes = det.boxes.astype(np.float32) * factors
        return Detections(boxes=boxes, scores=det.scores.astype(np.float32), masks=masks, image_shape=(h, w),
                          mask_scores=det.mask_scores)

    def _tiled(self, image: np.ndarray) -> Detections:
        h, w = image.shape
        candidates: list[TilePiece] = []
        for y0, x0 in tile_origins((h, w), self.tile_size, self.tile_overlap):
            y1, x1 = min(y0 + self.tile_size, h), min(x0 + self.tile_size, w)
            det = self._capped(self.inner.segment(np.ascontiguousarray(image[y0:y1, x0:x1])))
            for score, mask_score, m in zip(det.scores, det.mask_confidence, det.masks, strict=True):
                piece = TilePiece.from_tile_mask(float(score), m, (y0, y1, x0, x1), (h, w), float(mask_score))
                if piece is not None:
                    candidates.append(piece)
        return merge_tile_detections(candidates, (h, w), self.merge_overlap, limit=self.max_detections)


def merge_passes(passes: list[Detections], shape: tuple[int, int], overlap: float) -> Detections:
    """Detections of several passes over one frame, a wire found twice (mask IoU above ``overlap``) kept once:
    greedy by score, as tiles are merged, but keeping the better-scored mask instead of the union (two
    scales' masks of one wire differ at its edges; their union would widen it)."""
    pieces = [(float(s), float(ms), m, b) for det in passes
              for s, ms, m, b in zip(det.scores, det.mask_confidence, det.masks, det.boxes, strict=True)]
    pieces.sort(key=lambda p: -p[0])
    kept: list[tuple[float, float, np.ndarray, np.ndarray]] = []
    areas: list[int] = []
    for piece in pieces:
        area = int(piece[2].sum())
        if area == 0:
            continue
        x0, y0, x1, y1 = piece[3]
        duplicate = False
        for (_, _, m, b), a in zip(kept, areas, strict=True):
            if b[0] > x1 or x0 > b[2] or b[1] > y1 or y0 > b[3]:
                continue  # boxes apart
            inter = int(np.logical_and(m, piece[2]).sum())
            if inter / (a + area - inter) > overlap:
                duplicate = True
                break
        if not duplicate:
            kept.append(piece)
            areas.append(area)
    if not kept:
        return Detections.empty(shape)
    return Detections(boxes=np.stack([k[3] for k in kept]).astype(np.float32),
                      scores=np.asarray([k[0] for k in kept], np.float32), masks=np.stack([k[2] for k in kept]),
                      image_shape=shape, mask_scores=np.asarray([k[1] for k in kept], np.float32))


def rescale_detections(det: Detections, shape: tuple[int, int]) -> Detections:
    """Detections of a resized frame in the pixels of the frame of ``shape``: each mask resampled
    linearly and cut at one half (smooth edges both ways), boxes from the masks; masks left empty dropped."""
    h, w = shape
    if len(det) == 0:
        return Detections.empty(shape)
    sh, sw = det.image_shape
    masks = np.zeros((len(det), h, w), bool)
    for i, m in enumerate(det.masks):
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if len(rows) == 0:
            continue
        # only the mask's box (plus a margin) is resampled: the cost follows the wire, not the frame
        r0, r1 = max(0, rows[0] - 2), min(sh, rows[-1] + 3)
        c0, c1 = max(0, cols[0] - 2), min(sw, cols[-1] + 3)
        y0, y1 = math.floor(r0 * h / sh), min(h, math.ceil(r1 * h / sh))
        x0, x1 = math.floor(c0 * w / sw), min(w, math.ceil(c1 * w / sw))
        if y1 <= y0 or x1 <= x0:
            continue
        # the frame region [y0, y1) x [x0, x1) maps to [y0 * sh / h, y1 * sh / h) of the resized frame
        a = np.array([[sw / w, 0, (x0 + 0.5) * sw / w - 0.5], [0, sh / h, (y0 + 0.5) * sh / h - 0.5]], np.float32)
        crop = cv2.warpAffine(m.astype(np.float32), a, (int(x1 - x0), int(y1 - y0)),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        masks[i, y0:y1, x0:x1] = crop >= 0.5
    keep = masks.reshape(len(masks), -1).any(axis=1)
    masks = masks[keep]
    return Detections(boxes=boxes_of(masks), scores=det.scores[keep].astype(np.float32), masks=masks,
                      image_shape=shape, mask_scores=None if det.mask_scores is None else det.mask_scores[keep])


Window = tuple[int, int, int, int]  # y0, y1, x0, x1 (ends exclusive), frame coordinates


class TilePiece:
    """One detection seen by one or more tiles: its mask cropped to its bounding box (``box``) in frame
    coordinates, so memory grows with the wire, not with the frame."""

    __slots__ = ("box", "crop", "mask_score", "score", "windows")

    def __init__(self, score: float, crop: np.ndarray, box: Window, window: Window,
                 mask_score: float | None = None) -> None:
        self.score = score
        self.mask_score = score if mask_score is None else mask_score
        self.crop = crop
        self.box = box
        self.windows = [window]  # the tiles that saw it

    @classmethod
    def from_tile_mask(cls, score: float, mask: np.ndarray, window: Window,
                       shape: tuple[int, int], mask_score: float | None = None) -> TilePiece | None:
        rows = np.flatnonzero(mask.any(axis=1))
        if len(rows) == 0:
            return None
        cols = np.flatnonzero(mask.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        y0, x0 = window[0], window[2]
        return cls(score, mask[r0:r1, c0:c1].copy(), (y0 + r0, y0 + r1, x0 + c0, x0 + c1), window, mask_score)

    def region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The mask over frame region [y0, y1) x [x0, x1) (False outside the piece)."""
        out = np.zeros((y1 - y0, x1 - x0), bool)
        by0, by1, bx0, bx1 = self.box
        iy0, iy1, ix0, ix1 = max(y0, by0), min(y1, by1), max(x0, bx0), min(x1, bx1)
        if iy1 > iy0 and ix1 > ix0:
            out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = self.crop[iy0 - by0:iy1 - by0, ix0 - bx0:ix1 - bx0]
        return out

    def absorb(self, other: TilePiece) -> None:
        """Union with another piece of the same wire."""
        y0, y1 = min(self.box[0], other.box[0]), max(self.box[1], other.box[1])
        x0, x1 = min(self.box[2], other.box[2]), max(self.box[3], other.box[3])
        self.crop = self.region(y0, y1, x0, x1) | other.region(y0, y1, x0, x1)
        self.box = (y0, y1, x0, x1)
        self.windows.extend(other.windows)
        self.mask_score = max(self.mask_score, other.mask_score)

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        return self.region(0, shape[0], 0, shape[1])


def tile_origins(shape: tuple[int, int], tile: int, overlap: int) -> list[tuple[int, int]]:
    """Top-left corners of tiles covering ``shape`` with at least ``overlap`` pixels shared."""
    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        stride = tile - overlap
        out = list(range(0, n - tile, stride))
        out.append(n - tile)
        return out

    return [(y, x) for y in starts(shape[0]) for x in starts(shape[1])]


def _agreement(a: TilePiece, b: TilePiece) -> float:
    """IoU of two pieces inside the region both of their tiles saw (0 when they share nothing).

    Where two tiles overlap, both saw the same pixels: one wire gives the same mask there, two
    different wires do not. Comparing only there lets pieces of a wire cut by tile edges be joined."""
    if (a.box[1] <= b.box[0] or b.box[1] <= a.box[0] or a.box[3] <= b.box[2] or b.box[3] <= a.box[2]):
        return 0.0  # bounding boxes apart: cheap early exit
    best = 0.0
    for ay0, ay1, ax0, ax1 in a.windows:
        for by0, by1, bx0, bx1 in b.windows:
            y0, y1, x0, x1 = max(ay0, by0), min(ay1, by1), max(ax0, bx0), min(ax1, bx1)
            if y1 <= y0 or x1 <= x0:
                continue
            ma, mb = a.region(y0, y1, x0, x1), b.region(y0, y1, x0, x1)
            union = int(np.logical_or(ma, mb).sum())
            if union:
                best = max(best, int(np.logical_and(ma, mb).sum()) / union)
    return best


def merge_tile_detections(candidates: list[TilePiece], shape: tuple[int, int],
                          merge_overlap: float, limit: int | None = None) -> Detections:
    """Greedy merge by score: a piece agreeing with a kept detection inside their shared tile region
    (IoU above ``merge_overlap``) is the same wire seen twice: joined to it (union of masks; pieces
    of a wire cut by tile edges become one) and not reported again."""
    kept: list[TilePiece] = []
    for piece in sorted(candidates, key=lambda c: -c.score):
        for k in kept:
            if _agreement(k, piece) > merge_overlap:
                k.absorb(piece)
                break
        else:
            kept.append(piece)
    if not kept:
        return Detections.empty(shape)
    if limit is not None:
        kept = kept[:limit]  # already in score order; full-frame masks only for those reported
    masks = np.stack([k.full(shape) for k in kept])
    boxes = np.asarray([(k.box[2], k.box[0], k.box[3], k.box[1]) for k in kept], np.float32)
    return Detections(boxes=boxes, scores=np.asarray([k.score for k in kept], np.float32),
                      masks=masks, image_shape=shape,
                      mask_scores=np.asarray([k.mask_score for k in kept], np.float32))



def load_fitted_segmenter(backend: str, options: Mapping[str, Any], *, preprocess: FitSettings | None = None,
                          max_detections: int | None = None, pixel_size_nm: float | None = None) -> FitSegmenter:
    """The backend named ``backend`` behind the runtime's resize / scale / tile path, as the daemon runs it:
    what ``wirewatch segment``, ``evaluate``, the web upload and the panel use. ``options`` are
    ``segment.options`` (``scale`` and ``scale_window`` taken out for the wrapper, the rest for the backend);
    ``preprocess``: a ``PreprocessConfig`` (default: its defaults)."""
    from wirewatch.segment import load_segmenter

    runtime, rest = split_scale_options(backend, dict(options))
    inner = load_segmenter(backend, **rest)
    common: dict[str, Any] = {"max_detections": max_detections, "scale": runtime.scale,
                              "scale_window": runtime.scale_window, "pixel_size_nm": pixel_size_nm,
                              "polarity": runtime.polarity}
    if preprocess is None:
        return FitSegmenter(inner, max_side=DEFAULT_MAX_SIDE, **common)
    return FitSegmenter(inner, max_side=preprocess.max_side, mode=preprocess.fit, tile_size=preprocess.tile_size,
                        tile_overlap=preprocess.tile_overlap, merge_overlap=preprocess.merge_overlap, **common)
