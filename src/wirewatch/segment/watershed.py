"""Classical baseline: Otsu foreground, distance transform, marker-based watershed (scikit-image).

The paper's baseline. Markers are the regional maxima of the (lightly smoothed) distance map;
a long rod's distance ridge is nearly flat and rasterisation puts several small maxima on it,
which naive peak markers turn into many fragments. So neighbouring watershed regions are merged
again when the saddle between them is almost as high as the lower of their two peaks
(``saddle >= merge_ratio * min(peak_a, peak_b)``): a cut across a rod's full width is merged
back, a cut through a narrow neck (two touching blobs) is kept. Crossing wires form one
distance-map basin around the crossing and stay merged, as the paper reports.

Score: 0.5 + 0.5 x solidity (area / convex-hull area) of each region, in (0.5, 1]: a single
straight wire scores near 1, merged crossings and clumps lower, so AP ranks clean detections
first, while every region still passes the usual 0.5 score threshold (the watershed has no
notion of rejecting a region; pixel accuracy and counts should see all of them).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from scipy import ndimage as ndi

from wirewatch.errors import InputError
from wirewatch.types import Detections


class WatershedSegmenter:
    """Distance-transform watershed with saddle-based merging of over-split regions.

    Options: ``threshold`` (None = Otsu, else a fixed foreground level on the 0..1 image),
    ``smooth_sigma`` (Gaussian sigma in px applied to the image before thresholding, 0 = off),
    ``merge_ratio`` (0..1, see the module docstring; 1.0 merges nothing extra, 0 merges
    everything connected), ``min_area`` (px; smaller regions are dropped), ``model`` (accepted
    and ignored so ``--model`` can be passed to every backend).
    """

    name = "watershed"

    def __init__(self, *, threshold: float | None = None, smooth_sigma: float = 1.0,
                 merge_ratio: float = 0.5, min_area: int = 12, model: Any = None) -> None:
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise InputError(f"watershed threshold must be between 0 and 1 (exclusive), got {threshold}")
        if smooth_sigma < 0:
            raise InputError(f"watershed smooth_sigma must be >= 0, got {smooth_sigma}")
        if not 0.0 <= merge_ratio <= 1.0:
            raise InputError(f"watershed merge_ratio must be between 0 and 1, got {merge_ratio}")
        if min_area < 1:
            raise InputError(f"watershed min_area must be >= 1 pixel, got {min_area}")
        self.threshold = threshold
        self.smooth_sigma = smooth_sigma
        self.merge_ratio = merge_ratio
        self.min_area = int(min_area)

    def segment(self, image: np.ndarray) -> Detections:
        img = np.asarray(image)
        if img.ndim != 2 or img.size == 0:
            raise InputError(f"watershed expects a non-empty 2-D image, got shape {img.shape}")
        img = np.nan_to_num(img.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
        labels = self.label(img)
        return _detections(labels, img.shape)

    def foreground(self, image: np.ndarray) -> np.ndarray:
        from skimage.filters import threshold_otsu

        smooth = _gaussian(image, self.smooth_sigma) if self.smooth_sigma > 0 else image
        if self.threshold is not None:
            level = self.threshold
        elif float(smooth.max()) <= float(smooth.min()):
            return np.zeros(image.shape, bool)  # flat frame: nothing to find
        else:
            level = float(threshold_otsu(smooth))
        return np.asarray(smooth > level)

    def label(self, image: np.ndarray) -> np.ndarray:
        """(H, W) int32 label image of the instances (0 = background)."""
        from skimage.morphology import local_maxima
        from skimage.segmentation import watershed

        fg = self.foreground(image)
        if not fg.any():
            return np.zeros(image.shape, np.int32)
        # Exact Euclidean distance to the background (OpenCV: ~10x faster than scipy's EDT here).
        dist = cv2.distanceTransform(fg.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        smooth_dist = _gaussian(dist, 0.7) * fg  # tames raster noise on the ridge
        markers, _ = ndi.label(local_maxima(smooth_dist) & fg)
        labels = np.asarray(watershed(-smooth_dist, markers, mask=fg), np.int32)
        labels = _merge_shallow_saddles(labels, smooth_dist, self.merge_ratio)
        return _drop_small(labels, self.min_area)


def _gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with a +-4 sigma kernel, reflected borders (as scipy's default), via OpenCV."""
    radius = max(1, int(4.0 * sigma + 0.5))
    return np.asarray(cv2.GaussianBlur(image.astype(np.float32, copy=False), (2 * radius + 1, 2 * radius + 1),
                                       sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT))


def _merge_shallow_saddles(labels: np.ndarray, dist: np.ndarray, ratio: float) -> np.ndarray:
    """Union neighbouring regions whose shared boundary is nearly as deep as their lower peak."""
    n = int(labels.max())
    if n < 2:
        return labels
    peaks = np.zeros(n + 1, np.float64)
    np.maximum.at(peaks, labels.ravel(), dist.ravel().astype(np.float64))  # no sort, unlike ndi.maximum
    pairs_a: list[np.ndarray] = []
    pairs_b: list[np.ndarray] = []
    values: list[np.ndarray] = []
    # 8-neighbour adjacencies: right, down, and both diagonals.
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = labels[: labels.shape[0] - dy, max(0, -dx): labels.shape[1] - max(0, dx)]
        b = labels[dy:, max(0, dx): labels.shape[1] + min(0, dx) or None]
        da = dist[: dist.shape[0] - dy, max(0, -dx): dist.shape[1] - max(0, dx)]
        db = dist[dy:, max(0, dx): dist.shape[1] + min(0, dx) or None]
        sel = (a != b) & (a > 0) & (b > 0)
        if sel.any():
            pairs_a.append(np.minimum(a[sel], b[sel]))
            pairs_b.append(np.maximum(a[sel], b[sel]))
            values.append(np.minimum(da[sel], db[sel]))
    if not values:
        return labels
    pa = np.concatenate(pairs_a)
    pb = np.concatenate(pairs_b)
    v = np.concatenate(values).astype(np.float64)
    key = pa.astype(np.int64) * (n + 1) + pb
    order = np.argsort(key, kind="stable")
    key, v = key[order], v[order]
    uniq, start = np.unique(key, return_index=True)
    saddle = np.maximum.reduceat(v, start)
    ua, ub = uniq // (n + 1), uniq % (n + 1)
    merge = saddle >= ratio * np.minimum(peaks[ua], peaks[ub])
    parent = np.arange(n + 1)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    # Merge the highest saddles first so chains of fragments along one rod collapse together.
    for idx in np.argsort(-saddle):
        if merge[idx]:
            ra, rb = find(int(ua[idx])), find(int(ub[idx]))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n + 1)])
    _, relabel = np.unique(roots, return_inverse=True)
    return relabel.astype(np.int32)[labels]


def _drop_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    n = int(labels.max())
    if n == 0:
        return labels
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_area
    keep[0] = False
    lut = np.zeros(n + 1, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def _detections(labels: np.ndarray, shape: tuple[int, ...]) -> Detections:
    h, w = int(shape[0]), int(shape[1])
    n = int(labels.max())
    if n == 0:
        return Detections.empty((h, w))
    masks = labels[None, :, :] == np.arange(1, n + 1, dtype=np.int32)[:, None, None]
    boxes = np.zeros((n, 4), np.float32)
    scores = np.zeros(n, np.float32)
    for i, sl in enumerate(ndi.find_objects(labels)):
        if sl is None:
            continue
        ys, xs = sl
        boxes[i] = (xs.start, ys.start, xs.stop, ys.stop)
        crop = (labels[sl] == i + 1).astype(np.uint8)
        contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        hull_area = cv2.contourArea(cv2.convexHull(np.concatenate(contours))) if contours else 0.0
        area = float(crop.sum())
        # contourArea runs through pixel centres, so pad the hull by half a pixel of perimeter.
        perimeter = cv2.arcLength(cv2.convexHull(np.concatenate(contours)), True) if contours else 0.0
        solidity = min(1.0, area / max(hull_area + 0.5 * perimeter + 1.0, 1.0))
        scores[i] = 0.5 + 0.5 * solidity
    return Detections(boxes=boxes, scores=scores, masks=masks, image_shape=(h, w))
