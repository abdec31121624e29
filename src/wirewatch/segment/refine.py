"""Refined masks: a small convolutional net moves each pasted mask's edges onto the frame's own.

The mask head sees a wire through 14 x 14 RoI features and answers on a 28 x 28 grid, so its edges are a
pixel or so off on a 7-15 px wide wire (docs/model.md, "Where the mask AP goes"). The frame itself has the
edges at full resolution, but grey levels alone cannot tell which wire an edge belongs to where wires cross.
The refiner reads both, per detection, at the frame's resolution: the levelled frame scaled by the wire's
own level, the detection's pasted probability, the highest probability any other confident detection
gives each pixel (where a crossing wire is) and the axis of the straight wire the detection's box holds
(``axis_prior``: a long diagonal wire's box is found far better than its mask, which the head draws on a
28 x 28 grid and often leaves in pieces). It adds a correction to the pasted probability's logit, so a
refiner that learnt nothing returns the mask head's masks unchanged.

Its inputs are built here, and only here, for training (``wirewatch.train.refiner``) and the runtime alike;
the net runs in onnxruntime (``MaskRefiner``), no torch. Boxes, scores and mask scores do not change; masks
(and with ``mask_shape=rect``/``rod`` the shape fits, which then read the refined probabilities) do.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wirewatch.errors import InputError, ModelError
from wirewatch.segment.boxes import box_iou

log = logging.getLogger(__name__)

# (rows, cols, probabilities) of one detection's mask, in frame coordinates (``paste.paste_window``).
Window = tuple[slice, slice, np.ndarray]

FORMAT = "wirewatch-mask-refiner-2"  # metadata ``format`` of a refiner ONNX file
INPUT_CHANNELS = 4
MARGIN = 6  # px around a mask's support (and the detection's box) that the refiner reads and may move the edge into
SUPPORT = 0.02  # pasted probability above which a pixel is the mask's support
OTHER_SCORE = 0.5  # detections at least this confident tell the refiner where other wires are
LEVEL_PERCENTILE = 90.0  # the wire's level: this percentile of the frame under its mask
MAX_RELATIVE = 4.0  # frame / wire level is clipped here (a crossing is ~2x, a clump more)
GUARD_IOU = 0.7  # a refined mask overlapping its pasted one less than this keeps the pasted one ...
GUARD_BOX_IOU = 0.8  # ... unless its bounding box matches the detection's box at least this well, and better
AXIS_REACH = 16.0  # px: the axis prior falls from 1 on the wire's axis to 0 this far from it
DEFAULT_REFINER = Path(__file__).resolve().parent.parent / "models" / "default.refiner.onnx"
TRAINED_FOR = "trained_for_model_sha256"  # metadata key: the model file whose masks the refiner learnt


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_refiner(refine: object) -> Path | None:
    """The ``mask_refine`` option -> the refiner file to load, or None for ``"none"``.

    ``"default"`` (and ``"auto"``, see ``load_refiner``): the refiner trained on the shipped model's masks
    (``models/default.refiner.onnx``); anything else is a path to a refiner ONNX file
    (``python -m wirewatch.train.refiner``)."""
    if refine is None or refine is False or refine == "none":
        return None
    if refine is True or refine in ("default", "auto"):
        return DEFAULT_REFINER
    if not isinstance(refine, (str, Path)):
        raise InputError(f"mask_refine must be auto, none, default or a refiner .onnx path, got {refine!r}")
    path = Path(refine).expanduser()
    if not path.is_file():
        raise ModelError(f"mask refiner file {path} does not exist (mask_refine takes auto, none, default or a path)")
    return path


def load_refiner(refine: object, model_path: Path, threads: int = 1, spinning: bool = False) -> MaskRefiner | None:
    """The refiner the ``mask_refine`` option asks for, for the model file ``model_path``.

    ``"auto"`` (the backends' default) loads the shipped refiner only when it was trained on this very model
    file's masks (its metadata names the file's sha256): a refiner learns one model's habits, so another model
    (a new leg, a toy model) gets plain masks. An explicit ``"default"`` or path is loaded whatever it was trained
    on, with a warning when that was another model."""
    path = resolve_refiner(refine)
    if path is None or (refine == "auto" and not path.is_file()):
        return None
    refiner = MaskRefiner(path, threads, spinning)
    trained_for = refiner.metadata.get(TRAINED_FOR)
    if trained_for != file_sha256(model_path):
        if refine == "auto":
            log.info("mask refiner %s was trained for another model than %s: masks as pasted", path.name, model_path.name)
            return None
        log.warning("mask refiner %s was trained for another model (sha256 %s) than %s", path, trained_for,
                    model_path.name)
    else:
        log.info("mask refiner %s", path.name)
    return refiner


def support_region(window: Window, image_shape: tuple[int, int],
                   box: np.ndarray | None = None) -> tuple[slice, slice] | None:
    """The rectangle the refiner reads for one mask: its support (probability > ``SUPPORT``) and the detection's
    ``box`` (x0, y0, x1, y1; where a mask left part of the wire out), grown by ``MARGIN`` px and clipped to the
    frame; None for a mask without support."""
    rows, cols, probs = window
    ys, xs = np.nonzero(probs > SUPPORT)
    if len(ys) == 0:
        return None
    top, bottom = rows.start + int(ys.min()), rows.start + int(ys.max()) + 1
    left, right = cols.start + int(xs.min()), cols.start + int(xs.max()) + 1
    if box is not None and np.all(np.isfinite(box)):
        left, top = min(left, math.floor(box[0])), min(top, math.floor(box[1]))
        right, bottom = max(right, math.ceil(box[2])), max(bottom, math.ceil(box[3]))
    r0, r1 = max(top - MARGIN, 0), min(bottom + MARGIN, image_shape[0])
    c0, c1 = max(left - MARGIN, 0), min(right + MARGIN, image_shape[1])
    return slice(r0, r1), slice(c0, c1)


_ANGLES = np.linspace(0.0, np.pi / 2, 181)  # the angles box_axis tries, every half degree


def box_axis(box: np.ndarray, mask_xy: np.ndarray, sign: float) -> tuple[float, float, float, float] | None:
    """The axis of the straight wire (a rectangle) whose bounding box is ``box`` and which runs down-right
    (``sign`` 1; image y points down) or up-right (-1): centre x, y, angle and half length, or None where the
    box fits no rectangle.

    A rectangle of half length a, half width b at angle t in [0, 90] degrees has a box of half sides
    a cos t + b sin t, a sin t + b cos t around its centre: given b (twice the median distance from the axis of
    the mask's pixels ``mask_xy``, (n, 2) x, y, re-estimated as the angle settles) that fixes t."""
    x0, y0, x1, y1 = (float(v) for v in box)
    hx, hy = (x1 - x0) / 2, (y1 - y0) / 2
    if min(hx, hy) <= 0:
        return None
    cx, cy = x0 + hx, y0 + hy
    dx, dy = mask_xy[:, 0] - cx, mask_xy[:, 1] - cy
    half_width = min(4.0, 0.25 * min(hx, hy))
    for _ in range(3):
        half_length = np.divide(hx - half_width * np.sin(_ANGLES), np.cos(_ANGLES),
                                out=np.full_like(_ANGLES, np.inf), where=np.cos(_ANGLES) > 1e-6)
        miss = np.abs(half_length * np.sin(_ANGLES) + half_width * np.cos(_ANGLES) - hy)
        miss[~np.isfinite(half_length) | (half_length < half_width)] = np.inf
        k = int(np.argmin(miss))
        if not np.isfinite(miss[k]):
            return None
        angle = sign * float(_ANGLES[k])
        off = np.abs(-np.sin(angle) * dx + np.cos(angle) * dy)
        near = off[off < 2 * half_width + 2]
        if near.size == 0:
            break
        new_width = min(2 * float(np.median(near)), 0.5 * min(hx, hy))
        if abs(new_width - half_width) < 0.25:
            break
        half_width = new_width
    return cx, cy, angle, float(half_length[k])


def axis_prior(box: np.ndarray | None, probs: np.ndarray, others: np.ndarray, rows: slice, cols: slice,
               threshold: float = 0.5) -> np.ndarray:
    """The refiner's fourth input over (rows, cols): 1 on the axis of the straight wire the detection's box holds
    (``box_axis``), falling to 0 at ``AXIS_REACH`` px from it and past its ends; zeros where no axis fits.
    Of the box's two diagonals it takes the one along which the detection's probabilities (``probs``) are
    highest where no other wire (``others``) claims the pixels: the head often draws both wires of an X."""
    best, best_score = np.zeros(probs.shape, np.float32), 0.0
    if box is None or not np.all(np.isfinite(box)):
        return best
    ys, xs = np.nonzero(probs >= threshold)
    mask_xy = np.stack([xs + cols.start + 0.5, ys + rows.start + 0.5], 1)
    yy = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] + np.float32(0.5)  # pixel centres
    xx = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :] + np.float32(0.5)
    own = probs * (1 - others)
    for sign in (1.0, -1.0):
        axis = box_axis(box, mask_xy, sign)
        if axis is None:
            continue
        cx, cy, angle, half_length = axis
        along = np.abs(np.cos(angle) * (xx - cx) + np.sin(angle) * (yy - cy))
        across = np.abs(-np.sin(angle) * (xx - cx) + np.cos(angle) * (yy - cy))
        prior = np.clip(1 - across / AXIS_REACH, 0, 1) * np.clip(1 + (half_length - along) / 2, 0, 1)
        score = float(np.sum(prior * own))
        if score > best_score:
            best, best_score = prior.astype(np.float32), score
    return best


def window_in(window: Window, rows: slice, cols: slice) -> np.ndarray:
    """A window's probabilities on the rectangle (rows, cols) of the frame (0 outside the window)."""
    out = np.zeros((rows.stop - rows.start, cols.stop - cols.start), np.float32)
    w_rows, w_cols, probs = window
    r0, r1 = max(rows.start, w_rows.start), min(rows.stop, w_rows.stop)
    c0, c1 = max(cols.start, w_cols.start), min(cols.stop, w_cols.stop)
    if r0 < r1 and c0 < c1:
        out[r0 - rows.start:r1 - rows.start, c0 - cols.start:c1 - cols.start] = \
            probs[r0 - w_rows.start:r1 - w_rows.start, c0 - w_cols.start:c1 - w_cols.start]
    return out


class OtherWires:
    """Per pixel the highest and second-highest probability over the confident detections' windows, so that
    "the most any *other* detection gives this pixel" costs one lookup per detection."""

    def __init__(self, windows: Sequence[Window | None], scores: np.ndarray, image_shape: tuple[int, int]):
        self.first = np.zeros(image_shape, np.float32)
        self.second = np.zeros(image_shape, np.float32)
        self.owner = np.full(image_shape, -1, np.int32)
        for k, window in enumerate(windows):
            if window is None or scores[k] < OTHER_SCORE:
                continue
            rows, cols, probs = window
            first, second, owner = self.first[rows, cols], self.second[rows, cols], self.owner[rows, cols]
            above = probs > first
            second[...] = np.where(above, first, np.maximum(second, probs))
            first[above] = probs[above]
            owner[above] = k

    def excluding(self, k: int, rows: slice, cols: slice) -> np.ndarray:
        """The highest probability a detection other than ``k`` gives each pixel of (rows, cols)."""
        mine = self.owner[rows, cols] == k
        return np.where(mine, self.second[rows, cols], self.first[rows, cols])


def refiner_input(image: np.ndarray, probs: np.ndarray, others: np.ndarray, prior: np.ndarray,
                  threshold: float = 0.5) -> np.ndarray:
    """(4, h, w) float32 refiner input for one detection's rectangle: the frame relative to the wire's level
    (``LEVEL_PERCENTILE`` of the frame under the mask, clipped to 0..``MAX_RELATIVE``: the same for faint and
    strong contrast), the detection's probabilities, the other wires' (``OtherWires.excluding``) and the axis
    prior (``axis_prior``)."""
    under = image[probs >= threshold]
    level = max(float(np.percentile(under, LEVEL_PERCENTILE)) if under.size else 0.0, 1e-3)
    relative = np.clip(image.astype(np.float32) / np.float32(level), 0.0, MAX_RELATIVE)
    return np.stack([relative, probs.astype(np.float32), others.astype(np.float32), prior]).astype(np.float32)


def refinement_inputs(image: np.ndarray, windows: Sequence[Window | None], boxes: np.ndarray, scores: np.ndarray,
                      threshold: float = 0.5) -> list[tuple[slice, slice, np.ndarray] | None]:
    """For each window (and its detection's box), its rectangle and refiner input (None where the mask has no
    support)."""
    others = OtherWires(windows, scores, image.shape)
    out: list[tuple[slice, slice, np.ndarray] | None] = []
    for k, window in enumerate(windows):
        region = None if window is None else support_region(window, image.shape, boxes[k])
        if region is None:
            out.append(None)
            continue
        rows, cols = region
        probs, other = window_in(window, rows, cols), others.excluding(k, rows, cols)  # type: ignore[arg-type]
        out.append((rows, cols, refiner_input(image[rows, cols], probs, other,
                                              axis_prior(boxes[k], probs, other, rows, cols, threshold), threshold)))
    return out


def bounding_box_iou(mask: np.ndarray, rows: slice, cols: slice, box: np.ndarray) -> float:
    """IoU of ``mask``'s (over rows, cols of the frame) bounding box with ``box`` (x0, y0, x1, y1)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return 0.0
    bounds = (cols.start + xs.min(), rows.start + ys.min(), cols.start + xs.max() + 1, rows.start + ys.max() + 1)
    return float(box_iou(np.array(bounds), box)[0, 0])


class MaskRefiner:
    """A refiner ONNX file in onnxruntime: refined windows from pasted ones."""

    def __init__(self, path: str | Path, threads: int = 1, spinning: bool = False) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"mask refiner file {self.path} does not exist")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = max(1, int(threads))
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"cannot load mask refiner {self.path}: {exc}") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        made_as = self.metadata.get("format", "")
        if made_as.startswith("wirewatch-mask-refiner-") and made_as != FORMAT:
            raise ModelError(f"{self.path} is a mask refiner of an older kind ({made_as!r}; this wirewatch reads "
                             f"{FORMAT!r}, with the axis prior as a fourth input): train one again with "
                             "python -m wirewatch.train.refiner, or use mask_refine=default or none")
        if made_as != FORMAT:
            raise ModelError(f"{self.path} is not a mask refiner (metadata format {self.metadata.get('format')!r}, "
                             f"expected {FORMAT!r}); mask_refine takes auto, none, default or a refiner file")
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] != INPUT_CHANNELS:
            raise ModelError(f"{self.path}: expected one (1, {INPUT_CHANNELS}, H, W) input, got "
                             f"{[(i.name, i.shape) for i in inputs]}")
        self.input_name = inputs[0].name

    def run(self, refiner_in: np.ndarray) -> np.ndarray:
        """(3, h, w) input -> (h, w) refined probabilities."""
        (out,) = self.session.run(None, {self.input_name: refiner_in[None]})
        return np.asarray(out, np.float32)[0, 0]

    def __call__(self, image: np.ndarray, windows: Sequence[Window | None], boxes: np.ndarray, scores: np.ndarray,
                 threshold: float = 0.5) -> list[Window | None]:
        """Refined windows (over each rectangle ``support_region`` gives) for ``windows`` pasted on ``image`` (the
        frame the model saw) in their detections' ``boxes``. A window without support, or without a pixel at the
        mask threshold, stays as it was, and so does one whose refined mask is not the same wire: mask IoU with
        the pasted one below ``GUARD_IOU``, unless the refined mask fills the detection's box (bounding-box IoU
        at least ``GUARD_BOX_IOU`` and better than the pasted mask's: a wire the mask head drew only in part)."""
        refined: list[Window | None] = []
        items = refinement_inputs(image, windows, boxes, scores, threshold)
        for window, box, item in zip(windows, boxes, items, strict=True):
            if item is None:
                refined.append(window)
                continue
            rows, cols, refiner_in = item
            pasted = refiner_in[1] >= threshold
            if not pasted.any():  # no mask stays no mask: which detections have a mask (and a particle) is the head's
                refined.append(window)
                continue
            probs = self.run(refiner_in)
            moved = probs >= threshold
            same_wire = bool(np.count_nonzero(pasted & moved) / np.count_nonzero(pasted | moved) >= GUARD_IOU)
            if not same_wire:
                fills = bounding_box_iou(moved, rows, cols, box)
                same_wire = fills >= GUARD_BOX_IOU and fills > bounding_box_iou(pasted, rows, cols, box)
            refined.append((rows, cols, probs) if same_wire else window)
        return refined
