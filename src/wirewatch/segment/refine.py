"""Refined masks: a small convolutional net moves each pasted mask's edges onto the frame's own.

The mask head sees a wire through 14 x 14 RoI features and answers on a 28 x 28 grid, so its edges are a
pixel or so off on a 7-15 px wide wire (docs/model.md, "Where the mask AP goes"). The frame itself has the
edges at full resolution, but grey levels alone cannot tell which wire an edge belongs to where wires cross.
The refiner reads both, per detection, at the frame's resolution: the levelled frame scaled by the wire's
own level, the detection's pasted probability and the highest probability any other confident detection
gives each pixel (where a crossing wire is). It adds a correction to the pasted probability's logit, so a
refiner that learnt nothing returns the mask head's masks unchanged.

Its inputs are built here, and only here, for training (``wirewatch.train.refiner``) and the runtime alike;
the net runs in onnxruntime (``MaskRefiner``), no torch. Boxes, scores and mask scores do not change; masks
(and with ``mask_shape=rect``/``rod`` the shape fits, which then read the refined probabilities) do.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wirewatch.errors import InputError, ModelError

log = logging.getLogger(__name__)

# (rows, cols, probabilities) of one detection's mask, in frame coordinates (``paste.paste_window``).
Window = tuple[slice, slice, np.ndarray]

FORMAT = "wirewatch-mask-refiner-1"  # metadata ``format`` of a refiner ONNX file
INPUT_CHANNELS = 3
MARGIN = 6  # px around a mask's support that the refiner reads and may move the edge into
SUPPORT = 0.02  # pasted probability above which a pixel is the mask's support
OTHER_SCORE = 0.5  # detections at least this confident tell the refiner where other wires are
LEVEL_PERCENTILE = 90.0  # the wire's level: this percentile of the frame under its mask
MAX_RELATIVE = 4.0  # frame / wire level is clipped here (a crossing is ~2x, a clump more)
GUARD_IOU = 0.7  # a refined mask overlapping its pasted one less than this keeps the pasted one
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


def support_region(window: Window, image_shape: tuple[int, int]) -> tuple[slice, slice] | None:
    """The rectangle the refiner reads for one mask: its support (probability > ``SUPPORT``) grown by
    ``MARGIN`` px and clipped to the frame; None for a mask without support."""
    rows, cols, probs = window
    ys, xs = np.nonzero(probs > SUPPORT)
    if len(ys) == 0:
        return None
    r0 = max(rows.start + int(ys.min()) - MARGIN, 0)
    r1 = min(rows.start + int(ys.max()) + MARGIN + 1, image_shape[0])
    c0 = max(cols.start + int(xs.min()) - MARGIN, 0)
    c1 = min(cols.start + int(xs.max()) + MARGIN + 1, image_shape[1])
    return slice(r0, r1), slice(c0, c1)


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


def refiner_input(image: np.ndarray, probs: np.ndarray, others: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(3, h, w) float32 refiner input for one detection's rectangle: the frame relative to the wire's level
    (``LEVEL_PERCENTILE`` of the frame under the mask, clipped to 0..``MAX_RELATIVE``: the same for faint and
    strong contrast), the detection's probabilities and the other wires' (``OtherWires.excluding``)."""
    under = image[probs >= threshold]
    level = max(float(np.percentile(under, LEVEL_PERCENTILE)) if under.size else 0.0, 1e-3)
    relative = np.clip(image.astype(np.float32) / np.float32(level), 0.0, MAX_RELATIVE)
    return np.stack([relative, probs.astype(np.float32), others.astype(np.float32)]).astype(np.float32)


def refinement_inputs(image: np.ndarray, windows: Sequence[Window | None], scores: np.ndarray,
                      threshold: float = 0.5) -> list[tuple[slice, slice, np.ndarray] | None]:
    """For each window, its rectangle and refiner input (None where the mask has no support)."""
    others = OtherWires(windows, scores, image.shape)
    out: list[tuple[slice, slice, np.ndarray] | None] = []
    for k, window in enumerate(windows):
        region = None if window is None else support_region(window, image.shape)
        if region is None:
            out.append(None)
            continue
        rows, cols = region
        out.append((rows, cols, refiner_input(image[rows, cols], window_in(window, rows, cols),  # type: ignore[arg-type]
                                              others.excluding(k, rows, cols), threshold)))
    return out


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
        if self.metadata.get("format") != FORMAT:
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

    def __call__(self, image: np.ndarray, windows: Sequence[Window | None], scores: np.ndarray,
                 threshold: float = 0.5) -> list[Window | None]:
        """Refined windows (over each mask's support rectangle) for ``windows`` pasted on ``image`` (the frame
        the model saw); a window without support, or whose refined mask is not the same wire (mask IoU with the
        pasted one below ``GUARD_IOU``), stays as it was."""
        refined: list[Window | None] = []
        for window, item in zip(windows, refinement_inputs(image, windows, scores, threshold), strict=True):
            if item is None:
                refined.append(window)
                continue
            probs = self.run(item[2])
            pasted, moved = item[2][1] >= threshold, probs >= threshold
            union = np.count_nonzero(pasted | moved)
            same_wire = union > 0 and np.count_nonzero(pasted & moved) / union >= GUARD_IOU
            refined.append((item[0], item[1], probs) if same_wire else window)
        return refined
