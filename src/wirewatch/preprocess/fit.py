"""Run a segmenter on frames larger than it should see: resize, or tile and merge.

``FitSegmenter`` wraps any ``Segmenter`` and is itself one. Frames whose longer side is at
most ``max_side`` pass through unchanged. Larger frames are either resized down (one pass,
masks scaled back up) or cut into overlapping tiles whose detections are pasted into frame
coordinates and merged where a wire was seen by two tiles.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from wirewatch.coco import boxes_of
from wirewatch.segment.base import Segmenter
from wirewatch.types import Detections


class FitSegmenter:
    """A ``Segmenter`` that resizes or tiles large frames for the wrapped one."""

    def __init__(self, inner: Segmenter, *, max_side: int | None, mode: Literal["resize", "tile"] = "resize",
                 tile_size: int = 512, tile_overlap: int = 64, merge_overlap: float = 0.5,
                 max_detections: int | None = None) -> None:
        self.inner = inner
        self.max_detections = max_detections
        self.name = inner.name
        self.max_side = max_side
        self.mode = mode
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self.merge_overlap = merge_overlap

    def segment(self, image: np.ndarray) -> Detections:
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



def restrict_to_valid(det: Detections, valid: np.ndarray | None) -> Detections:
    """Clear NODATA pixels from every mask and drop detections left empty."""
    if valid is None or len(det) == 0:
        return det
    masks = det.masks & valid[None]
    keep = masks.reshape(len(masks), -1).any(axis=1)
    if keep.all() and np.array_equal(masks, det.masks):
        return det
    masks = masks[keep]
    return Detections(boxes=boxes_of(masks), scores=det.scores[keep], masks=masks, image_shape=det.image_shape,
                      mask_scores=None if det.mask_scores is None else det.mask_scores[keep])
