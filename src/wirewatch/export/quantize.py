"""Int8 weights and activations for the convolutions of the backbone, FPN and RPN of an exported model.

On the 2-core CPU these convolutions are ~75 % of a 512 px frame; onnxruntime's int8 kernels (QDQ
format, per-channel weights, calibrated activation ranges) cut the whole graph's CPU time by ~25 %
(609 -> 449 ms on one thread) and the file from 56.5 to 20.7 MB; AP on the first 50 ptychography eval
images: shipped weights box 0.483 / mask 0.319 (fp32 0.484 / 0.318), a better mid-training model
0.559 / 0.352 (fp32 0.555 / 0.358). The RoI heads (RoIAlign, box MLP, mask head) stay in float: int8
there gained nothing measurable.

Activation ranges come from synthetic frames of the distribution the model was trained on (``wirewatch.synth``
presets at the model's input size, scaled as the daemon scales 8-bit frames); the quantised graph is
then compared with the float one on other synthetic frames, and the export stops when they disagree
(``QuantizationMismatch``), so a model that does not survive int8 is never shipped silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wirewatch.errors import ModelError
from wirewatch.evaluate.metrics import greedy_pairs
from wirewatch.segment.boxes import box_iou

log = logging.getLogger(__name__)

QUANTIZED_PREFIXES = ("/backbone/", "/rpn/")  # node-name prefixes of torch.onnx.export's module scopes
# The training distribution (the shipped models are trained on the ptychography preset). Adding stxm and
# sem frames widened the activation ranges and cost a mid-training model 0.024 box / 0.022 mask AP
# (ptychography only: +0.003 / -0.006).
CALIBRATION_PRESETS = ("ptychography",)
CALIBRATION_FRAMES_PER_PRESET = 12
CHECK_FRAMES_PER_PRESET = 6
MIN_MATCHED_FRACTION = 0.85  # of the detections of either graph found again by the other (box IoU >= 0.5)
SCORE_MARGIN = 0.1  # a detection counts as found when the other graph scores it at least threshold - margin


class QuantizationMismatch(ModelError):
    """The int8 graph's detections differ too much from the float graph's."""


@dataclass(frozen=True)
class Agreement:
    """How the int8 graph's detections compare with the float graph's on check frames."""

    frames: int
    float_detections: int  # scored >= the threshold by the float graph
    int8_detections: int
    float_found: int  # of those, matched by the other graph (box IoU >= 0.5, score >= threshold - margin)
    int8_found: int
    mean_matched_iou: float

    @property
    def matched_fraction(self) -> float:
        """The worse of the two directions (1.0 when neither graph detects anything)."""
        return min(self.float_found / self.float_detections if self.float_detections else 1.0,
                   self.int8_found / self.int8_detections if self.int8_detections else 1.0)


def synthetic_frames(size: tuple[int, int], per_preset: int, seed: int,
                     presets: Sequence[str] = CALIBRATION_PRESETS) -> list[np.ndarray]:
    """float32 0..1 frames (8-bit synthetic images / 255, the daemon's scaling) of each preset."""
    from wirewatch.synth import generate, preset_config

    frames = []
    side = max(size)
    for p, name in enumerate(presets):
        cfg = preset_config(name, side)
        for i in range(per_preset):
            image = generate(cfg, seed=seed + 1000 * p + i).image
            frames.append(np.ascontiguousarray(image[: size[0], : size[1]], np.float32) / np.float32(255.0))
    return frames


def quantized_node_names(model_path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(model_path)).graph
    return [n.name for n in graph.node if n.op_type == "Conv" and n.name.startswith(QUANTIZED_PREFIXES)]


def quantize_model(src: str | Path, dst: str | Path, *, input_size: tuple[int, int], score_threshold: float,
                   calibration_per_preset: int = CALIBRATION_FRAMES_PER_PRESET,
                   check_per_preset: int = CHECK_FRAMES_PER_PRESET,
                   min_matched_fraction: float | None = None) -> Agreement:
    """Write the int8 version of the float model ``src`` to ``dst`` (metadata kept, ``precision`` added).

    Raises ``QuantizationMismatch`` (and writes nothing) when, on the check frames, fewer than
    ``min_matched_fraction`` (default ``MIN_MATCHED_FRACTION``) of either graph's detections are found by the other.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from wirewatch.segment.model_files import INPUT_NAME, THRESHOLD_INPUT

    src, dst = Path(src), Path(dst)
    if min_matched_fraction is None:
        min_matched_fraction = MIN_MATCHED_FRACTION  # read at call time (tests of barely trained models lower it)
    nodes = quantized_node_names(src)
    if not nodes:
        raise ModelError(f"{src}: no backbone/RPN convolutions to quantise (node names without "
                         f"{' or '.join(QUANTIZED_PREFIXES)} scopes)")
    calibration = synthetic_frames(input_size, calibration_per_preset, seed=900_000)
    threshold = np.asarray(score_threshold, np.float32)

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = iter(
                [{INPUT_NAME: f, THRESHOLD_INPUT: threshold} for f in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    tmp = dst.with_suffix(".int8.tmp.onnx")
    log.info("quantising %d convolutions to int8 (calibration: %d synthetic frames)", len(nodes), len(calibration))
    # Per-channel int8 weights, uint8 activations with calibrated (min/max) ranges: onnxruntime's fast
    # u8s8 path on AVX2. The quantiser logs a pre-processing hint at WARNING; shape inference is not needed.
    try:
        logging.getLogger().disabled, was_disabled = True, logging.getLogger().disabled
        try:
            quantize_static(str(src), str(tmp), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                            nodes_to_quantize=nodes, op_types_to_quantize=["Conv"],
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        except Exception as exc:  # onnxruntime's quantiser on a graph it cannot handle
            raise ModelError(f"int8 quantisation of {src} failed: {exc!r}; export with --precision fp32") from exc
        finally:
            logging.getLogger().disabled = was_disabled
        agreement = compare_detections(src, tmp, synthetic_frames(input_size, check_per_preset, seed=950_000),
                                       score_threshold)
        log.info("int8 vs float on %d check frames: %d of %d float detections found by int8, %d of %d int8 ones "
                 "by float (mean box IoU %.3f)", agreement.frames, agreement.float_found, agreement.float_detections,
                 agreement.int8_found, agreement.int8_detections, agreement.mean_matched_iou)
        if agreement.matched_fraction < min_matched_fraction:
            raise QuantizationMismatch(
                f"the int8 and float models disagree on {agreement.frames} synthetic check frames: "
                f"{agreement.float_found} of {agreement.float_detections} float detections found by int8, "
                f"{agreement.int8_found} of {agreement.int8_detections} int8 ones by float "
                f"({agreement.matched_fraction:.0%} < {min_matched_fraction:.0%}); export with --precision fp32")
        _set_metadata(tmp, dst, {
            "precision": "int8",
            "quantization": json.dumps({
                "format": "QDQ", "weights": "int8 per-channel", "activations": "uint8 min/max calibrated",
                "nodes": f"{len(nodes)} Conv under {', '.join(QUANTIZED_PREFIXES)}",
                "calibration": f"{len(calibration)} synthetic frames ({', '.join(CALIBRATION_PRESETS)})",
                "agreement": asdict(agreement) | {"matched_fraction": agreement.matched_fraction},
            }, sort_keys=True),
        })
    finally:
        tmp.unlink(missing_ok=True)
    return agreement


def _set_metadata(src: Path, dst: Path, extra: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(src))
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key not in extra and p.key != "onnx.infer"]
    del proto.metadata_props[:]
    for key, value in [*keep, *extra.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "wirewatch"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(dst))


def compare_detections(float_model: Path, int8_model: Path, frames: Sequence[np.ndarray],
                       score_threshold: float, score_margin: float = SCORE_MARGIN) -> Agreement:
    """Greedy one-to-one matching (box IoU >= 0.5) of each graph's detections above the threshold with the
    other graph's above ``threshold - score_margin`` (a score a hair either side of the threshold is not a
    disagreement); ``matched`` counts the worse direction."""
    import onnxruntime as ort

    from wirewatch.segment.model_files import INPUT_NAME, OUTPUT_NAMES, THRESHOLD_INPUT

    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                for p in (float_model, int8_model)]
    low = max(0.0, score_threshold - score_margin)
    feed_threshold = np.asarray(low, np.float32)
    n_float = n_int8 = float_found = int8_found = 0
    ious: list[float] = []
    for frame in frames:
        (boxes_a, scores_a), (boxes_b, scores_b) = (
            s.run(list(OUTPUT_NAMES[:2]), {INPUT_NAME: frame, THRESHOLD_INPUT: feed_threshold}) for s in sessions)
        sure_a, sure_b = scores_a >= score_threshold, scores_b >= score_threshold
        n_float += int(sure_a.sum())
        n_int8 += int(sure_b.sum())
        a_found = [iou for _, _, iou in greedy_pairs(box_iou(boxes_a[sure_a], boxes_b[scores_b >= low]), 0.5)]
        float_found += len(a_found)
        int8_found += len(greedy_pairs(box_iou(boxes_b[sure_b], boxes_a[scores_a >= low]), 0.5))
        ious.extend(a_found)
    return Agreement(frames=len(frames), float_detections=n_float, int8_detections=n_int8, float_found=float_found,
                     int8_found=int8_found, mean_matched_iou=float(np.mean(ious)) if ious else float("nan"))
