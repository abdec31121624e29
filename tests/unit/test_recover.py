"""Training weights recovered from an exported ONNX model (``wirewatch.train.recover``)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="recovery needs the `train` extra (torch, torchvision, onnx)")

from wirewatch.errors import ModelError  # noqa: E402
from wirewatch.segment.model_files import packaged_model_path  # noqa: E402
from wirewatch.segment.onnx_backend import OnnxSegmenter  # noqa: E402
from wirewatch.train.model import build_model, grey_to_model_input, load_init_weights  # noqa: E402
from wirewatch.train.recover import (  # noqa: E402
    _module_path,
    onnx_variant,
    recalibrate_batchnorm,
    state_dict_from_onnx,
)

from .conftest import toy_image  # noqa: E402

pytestmark = pytest.mark.timeout(900)


def recovered(path: Path) -> torch.nn.Module:
    model = build_model(onnx_variant(path) or "compact")
    model.load_state_dict(state_dict_from_onnx(path, model), strict=False)
    return model.eval()


def test_scope_names_map_to_modules() -> None:
    assert _module_path("/backbone/body/layer1/layer1.0/conv1/Conv") == "backbone.body.layer1.0.conv1"
    assert _module_path("/backbone/body/layer2/layer2.0/downsample/downsample.0/Conv") == \
        "backbone.body.layer2.0.downsample.0"
    assert _module_path("/rpn/head/conv/conv.0/conv.0.0_3/Conv") == "rpn.head.conv.0.0"
    assert _module_path("/rpn/head/cls_logits_3/Conv") == "rpn.head.cls_logits"
    assert _module_path("/roi_heads/mask_head/mask_head.0/mask_head.0.0/Conv") == "roi_heads.mask_head.0.0"
    assert _module_path("/backbone/fpn/inner_blocks.1/inner_blocks.1.0/Conv") == "backbone.fpn.inner_blocks.1.0"


def test_float_export_recovers_the_checkpoint_function(trained: dict[str, Path]) -> None:
    """BatchNorm folded by the export comes back as an exact eval-mode equivalent."""
    from wirewatch.export.onnx import model_from_checkpoint

    original, _ = model_from_checkpoint(trained["checkpoint"])
    model = recovered(trained["onnx"])
    a, b = original.state_dict(), model.state_dict()
    name = "roi_heads.mask_head.0.0.weight"  # not folded: copied as it was
    assert torch.allclose(a[name], b[name])
    image = torch.from_numpy(toy_image(trained["data"], 6))
    with torch.no_grad():
        fa = original.backbone(original.transform([grey_to_model_input(image)])[0].tensors)
        fb = model.backbone(model.transform([grey_to_model_input(image)])[0].tensors)
    for level in fa:
        scale = float(fa[level].abs().max())
        assert float((fa[level] - fb[level]).abs().max()) <= 1e-4 * max(scale, 1.0), level


def test_recalibrated_batchnorm_keeps_eval_and_matches_train_mode(trained: dict[str, Path]) -> None:
    model = recovered(trained["onnx"])
    batch = torch.stack([grey_to_model_input(torch.from_numpy(toy_image(trained["data"], i))) for i in (0, 1)])
    normalised = model.transform(list(batch))[0].tensors
    with torch.no_grad():
        before = model.backbone(normalised)
    assert recalibrate_batchnorm(model, [list(batch)]) == 20  # ResNet-18: stem, 16 block norms, 3 downsample
    with torch.no_grad():
        after = model.backbone(normalised)
        train_mode = copy.deepcopy(model).train().backbone(normalised)  # normalises by this batch's statistics
    for level in before:
        scale = max(float(before[level].abs().max()), 1.0)
        assert float((before[level] - after[level]).abs().max()) <= 1e-4 * scale, level
        # Calibrated on this very batch, train mode computes the eval-mode function.
        assert float((train_mode[level] - after[level]).abs().max()) <= 2e-3 * scale, level


def test_int8_shipped_model_recovers_its_detections() -> None:
    """The shipped (int8) model back in torch finds the wires the ONNX graph finds, by the export's own
    int8-vs-float agreement rule (``wirewatch.export.quantize``): the recovered weights are the float graph
    behind the int8 one, so a detection a hair either side of the threshold is not a disagreement."""
    from wirewatch.evaluate.metrics import greedy_pairs
    from wirewatch.export.quantize import MIN_MATCHED_FRACTION, SCORE_MARGIN
    from wirewatch.segment.boxes import box_iou
    from wirewatch.synth import generate, preset_config

    path = packaged_model_path()
    model = recovered(path)
    low = 0.5 - SCORE_MARGIN
    segmenter = OnnxSegmenter(path, score_threshold=low)
    sure = found = 0
    ious: list[float] = []
    for seed in (4242, 4243):
        image = generate(preset_config("ptychography", 256), seed=seed).image.astype(np.float32) / 255.0
        with torch.no_grad():
            out = model([grey_to_model_input(torch.from_numpy(image))])[0]
        t_boxes, t_scores = out["boxes"].numpy(), out["scores"].numpy()
        o_boxes, o_scores, _, _ = segmenter.engine.raw(image)
        for a_boxes, a_scores, b_boxes, b_scores in ((o_boxes, o_scores, t_boxes, t_scores),
                                                     (t_boxes, t_scores, o_boxes, o_scores)):
            matched = greedy_pairs(box_iou(a_boxes[a_scores >= 0.5], b_boxes[b_scores >= low]), 0.5)
            sure += int((a_scores >= 0.5).sum())
            found += len(matched)
            ious.extend(iou for _, _, iou in matched)
    assert sure >= 20 and found / sure >= MIN_MATCHED_FRACTION, (found, sure)
    assert float(np.median(ious)) >= 0.95


def test_foreign_files_are_named(trained: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot read ONNX model"):
        load_init_weights(build_model("compact"), junk)
    with pytest.raises(ModelError, match="does not fit this model"):
        state_dict_from_onnx(trained["onnx"], build_model("r50_fpn"))


def test_training_warm_starts_from_an_export(trained: dict[str, Path], tmp_path: Path) -> None:
    from wirewatch.train.config import TrainConfig
    from wirewatch.train.loop import Trainer

    cfg = TrainConfig(data=str(trained["data"]), out=str(tmp_path / "warm"), init=str(trained["onnx"]), steps=1,
                      batch_size=2, crop_size=64, warmup_steps=0, lr=1e-9, val_images=0, checkpoint_every=1, precise_bn_batches=2,
                      log_every=1)
    trainer = Trainer(cfg, show_progress=False)
    reference = recovered(trained["onnx"])
    name = "backbone.body.layer3.0.conv2.weight"
    assert torch.allclose(trainer.model.state_dict()[name], reference.state_dict()[name])
    assert not torch.allclose(trainer.model.state_dict()["backbone.body.bn1.running_var"],
                              reference.state_dict()["backbone.body.bn1.running_var"])  # recalibrated
    assert trainer.run().step == 1
    assert "BatchNorm recalibrated" in (tmp_path / "warm" / "train.log").read_text()
