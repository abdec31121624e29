"""Export a trained Mask R-CNN to ONNX, ending at the low-resolution mask probabilities.

The graph takes one grey frame ``image`` (H, W) float32 in 0..1 (H and W dynamic,
native pixel scale) and returns ``boxes`` (N, 4), ``scores`` (N,), ``labels`` (N,)
and ``mask_probs`` (N, M, M): M = 28, or 56 for the ``compact56`` variants, in the
metadata as ``mask_size``. Mask pasting is left to the runtime
(``wirewatch.segment.paste``): in-graph pasting cost about 1 s per frame.
The file carries its metadata (``metadata_props``) so the runtime can check it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wirewatch.errors import InputError, ModelError
from wirewatch.segment.model_files import (  # the graph's names, defined once beside its metadata
    INPUT_NAME,
    METADATA_FORMAT,
    OUTPUT_NAMES,
    THRESHOLD_INPUT,
)
from wirewatch.train.loop import read_checkpoint
from wirewatch.train.model import (
    CLASS_NAMES,
    IMAGE_MEAN,
    IMAGE_STD,
    build_model,
    grey_to_model_input,
    mask_size,
)

log = logging.getLogger(__name__)

OPSET = 17


class DetectionGraph(nn.Module):
    """Mask R-CNN up to (and not including) the mask pasting, for one grey frame.

    The model sees the grey frame copied to 3 channels, normalised alike: the stem convolution is folded
    to one input channel (weights summed over channels, the same result) so the graph neither builds
    nor convolves the copies (a third of the 7x7 stem's work).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()  # the caller's model keeps its 3-channel stem
        self.single_channel = _fold_grey_stem(self.model)

    def forward(self, image: Tensor, score_threshold: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        m: Any = self.model
        image_list, _ = m.transform([image.unsqueeze(0) if self.single_channel else grey_to_model_input(image)])
        features = m.backbone(image_list.tensors)
        proposals, _ = m.rpn(image_list, features)
        # The score threshold is a graph input: detections below it never reach the mask head,
        # which dominates the cost per frame (two 3x3 convs and a transposed conv per detection).
        saved = m.roi_heads.score_thresh
        m.roi_heads.score_thresh = score_threshold
        try:
            detections, _ = m.roi_heads(features, proposals, image_list.image_sizes)
        finally:
            m.roi_heads.score_thresh = saved
        d = detections[0]
        # NativeScaleTransform does not resize, so boxes are already in frame pixels.
        return d["boxes"], d["scores"], d["labels"], d["masks"][:, 0]


def _fold_grey_stem(model: nn.Module) -> bool:
    """Replace the stem conv by its 1-channel equivalent when the 3 input channels are always equal."""
    m: Any = model
    mean, std = list(m.transform.image_mean), list(m.transform.image_std)
    body: Any = getattr(getattr(m, "backbone", None), "body", None)
    conv: Any = getattr(body, "conv1", None)
    if not (isinstance(conv, nn.Conv2d) and conv.in_channels == 3 and conv.groups == 1
            and len(set(mean)) == 1 and len(set(std)) == 1):
        return False
    c: Any = conv  # torch types kernel_size etc. as tuple[int, ...]; Conv2d's signature wants pairs
    folded = nn.Conv2d(1, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation, bias=c.bias is not None)
    with torch.no_grad():
        folded.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None and folded.bias is not None:
            folded.bias.copy_(conv.bias)
    body.conv1 = folded
    m.transform.image_mean, m.transform.image_std = mean[:1], std[:1]
    return True


def model_from_checkpoint(checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The eval-mode torch model of a training checkpoint, and the checkpoint's other fields."""
    state = read_checkpoint(checkpoint)
    cfg = state.get("config", {})
    model = build_model(state.get("variant", cfg.get("variant", "compact")), len(CLASS_NAMES),
                        int(cfg.get("detections_per_image", 200)))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ModelError(f"checkpoint {checkpoint} does not fit its variant: {exc}") from None
    model.eval()
    return model, state


def export_metadata(state: dict[str, Any], input_size: tuple[int, int], score_threshold: float,
                    mask_threshold: float = 0.5) -> dict[str, str]:
    cfg = state.get("config", {})
    variant = str(state.get("variant", cfg.get("variant", "compact")))
    return {
        "format": METADATA_FORMAT,
        "input_name": INPUT_NAME,
        "score_threshold_input": THRESHOLD_INPUT,
        "input_layout": "HW",
        "input_dtype": "float32",
        "input_range": "0..1 optical density, bright wires on dark background",
        "input_height": str(input_size[0]),
        "input_width": str(input_size[1]),
        "input_scale": "native: no resize in the graph; trained on native-scale crops",
        "normalisation": json.dumps({"mean": IMAGE_MEAN, "std": IMAGE_STD, "applied": "in graph"}),
        "outputs": json.dumps(list(OUTPUT_NAMES)),
        "mask_size": str(mask_size(variant)),
        "class_names": json.dumps(list(CLASS_NAMES)),
        "variant": variant,
        "training_data_config_hash": str(state.get("data_config_hash", "unknown")),
        "training_step": str(state.get("step", "")),
        "training_config": json.dumps(cfg, sort_keys=True),
        "validation_metrics": json.dumps(state.get("last_metrics") or {}, sort_keys=True),
        "score_threshold": str(score_threshold),
        "mask_threshold": str(mask_threshold),
        "detections_per_image": str(cfg.get("detections_per_image", 200)),
        "precision": "fp32",
    }


PRECISIONS = ("fp32", "int8")


def export_onnx(checkpoint: str | Path, out: str | Path, input_size: tuple[int, int] = (512, 512),
                score_threshold: float = 0.5, mask_threshold: float = 0.5, precision: str = "fp32") -> Path:
    """Write ``out`` (.onnx, checked with ``onnx.checker``) from a training checkpoint.

    ``precision="int8"``: backbone/FPN/RPN convolutions quantised (``wirewatch.export.quantize``: ~25 % less
    CPU per frame, same AP); the float graph is compared with it on synthetic frames first.
    """
    import onnx

    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    out = Path(out)
    if input_size[0] < 32 or input_size[1] < 32:
        raise InputError(f"input size {input_size} too small (at least 32 x 32)")
    model, state = model_from_checkpoint(checkpoint)
    graph = DetectionGraph(model)
    example = torch.zeros(input_size, dtype=torch.float32)
    example[input_size[0] // 4: input_size[0] // 4 + 6, 8: input_size[1] - 8] = 0.8  # one wire-like bar
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    with torch.no_grad(), _fast_level_merge():
        torch.onnx.export(
            graph, (example, torch.tensor(0.05)), str(tmp), opset_version=OPSET, dynamo=False,
            input_names=[INPUT_NAME, THRESHOLD_INPUT], output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "height", 1: "width"},
                          **{name: {0: "detections"} for name in OUTPUT_NAMES}},
        )
    proto = onnx.load(str(tmp))
    del proto.metadata_props[:]
    metadata = export_metadata(state, input_size, score_threshold, mask_threshold)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "wirewatch"
    side = metadata["mask_size"]
    proto.doc_string = f"wirewatch Mask R-CNN (nanowires); outputs end at {side}x{side} mask probabilities"
    onnx.checker.check_model(proto)
    if precision == "int8":
        from wirewatch.export.quantize import quantize_model

        onnx.save(proto, str(tmp))
        try:
            quantize_model(tmp, out, input_size=input_size, score_threshold=score_threshold)
        finally:
            tmp.unlink(missing_ok=True)
    else:
        onnx.save(proto, str(out))
        tmp.unlink(missing_ok=True)
    log.info("exported %s (%s, %.1f MB)", out, precision, out.stat().st_size / 1e6)
    return out


def _merge_levels_by_gather(levels: Tensor, unmerged_results: list[Tensor]) -> Tensor:
    """Same result as torchvision's ``_onnx_merge_levels``, as one Gather instead of per-level ScatterElements.

    onnxruntime's ScatterElements copies element by element: ~1.4 s per frame with 165
    detections; a row Gather by the inverse permutation is a few ms.
    """
    order = torch.cat([torch.where(levels == level)[0] for level in range(len(unmerged_results))])
    return torch.cat(unmerged_results, 0)[torch.argsort(order)]


@contextlib.contextmanager
def _fast_level_merge() -> Iterator[None]:
    from torchvision.ops import poolers

    original = poolers._onnx_merge_levels
    poolers._onnx_merge_levels = _merge_levels_by_gather
    try:
        yield
    finally:
        poolers._onnx_merge_levels = original

