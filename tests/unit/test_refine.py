"""Refined masks (``wirewatch.segment.refine``, ``wirewatch.train.refiner``): the inputs built once for training
and runtime, the other wires' probabilities, an untrained refiner that changes nothing, torch vs onnxruntime
parity, clear errors for bad refiner files, and the shipped refiner on the shipped model: same detections and
scores, masks closer to the truth."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from wirewatch.errors import InputError, ModelError
from wirewatch.segment.model_files import packaged_model_path
from wirewatch.segment.refine import (
    DEFAULT_REFINER,
    INPUT_CHANNELS,
    MARGIN,
    MaskRefiner,
    OtherWires,
    refinement_inputs,
    refiner_input,
    resolve_refiner,
    support_region,
    window_in,
)
from wirewatch.synth.config import preset_config
from wirewatch.synth.generate import generate


def window(r0: int, c0: int, probs: np.ndarray) -> tuple[slice, slice, np.ndarray]:
    return slice(r0, r0 + probs.shape[0]), slice(c0, c0 + probs.shape[1]), probs.astype(np.float32)


def test_other_wires_are_the_most_any_other_confident_detection_gives_a_pixel() -> None:
    shape = (20, 20)
    a = window(0, 0, np.full((10, 10), 0.9))
    b = window(5, 5, np.full((10, 10), 0.6))
    c = window(0, 0, np.full((20, 20), 0.95))  # too unsure a detection (score 0.3) to count as another wire
    others = OtherWires([a, b, c, None], np.array([0.9, 0.8, 0.3, 0.9], np.float32), shape)
    everything = (slice(0, 20), slice(0, 20))
    seen_by_a = others.excluding(0, *everything)
    seen_by_b = others.excluding(1, *everything)
    assert seen_by_a[7, 7] == pytest.approx(0.6) and seen_by_a[2, 2] == 0.0 and seen_by_a[12, 12] == pytest.approx(0.6)
    assert seen_by_b[7, 7] == pytest.approx(0.9) and seen_by_b[2, 2] == pytest.approx(0.9) and seen_by_b[12, 12] == 0.0
    assert others.excluding(2, *everything)[7, 7] == pytest.approx(0.9)  # the unsure one sees both confident ones


def test_the_region_is_the_support_grown_by_the_margin_and_clipped() -> None:
    probs = np.zeros((30, 30), np.float32)
    rows: slice
    cols: slice
    probs[10:20, 2:5] = 0.8
    rows, cols = support_region(window(100, 0, probs), (512, 512))  # type: ignore[misc]
    assert (rows.start, rows.stop) == (110 - MARGIN, 120 + MARGIN)
    assert (cols.start, cols.stop) == (0, 5 + MARGIN)  # clipped at the frame's edge
    assert support_region(window(0, 0, np.zeros((5, 5))), (64, 64)) is None
    # the detection's box counts too (a mask the head drew only in part), its fractions rounded outwards
    rows, cols = support_region(window(100, 0, probs), (512, 512), np.array([1.5, 104.2, 20.0, 139.7]))  # type: ignore[misc]
    assert (rows.start, rows.stop, cols.start, cols.stop) == (104 - MARGIN, 140 + MARGIN, 0, 20 + MARGIN)
    inside = window_in(window(100, 0, probs), rows, cols)
    assert inside.shape == (rows.stop - rows.start, cols.stop - cols.start) and inside.sum() == pytest.approx(probs.sum())


def test_the_frame_is_read_relative_to_the_wire_so_contrast_does_not_matter() -> None:
    rng = np.random.default_rng(1)
    image = rng.uniform(0.0, 0.2, (40, 40)).astype(np.float32)
    image[15:25, :] += 0.3
    probs = np.zeros_like(image)
    probs[15:25, :] = 0.9
    others = prior = np.zeros_like(image)
    faint, strong = refiner_input(image, probs, others, prior), refiner_input(image * 3.0, probs, others, prior)
    assert faint.shape == (INPUT_CHANNELS, 40, 40) and faint.dtype == np.float32
    np.testing.assert_allclose(faint, strong, rtol=1e-5, atol=1e-6)
    assert 0.8 < float(np.median(faint[0][15:25])) < 1.0  # the wire sits near 1, below the 90th percentile
    assert faint[0].max() <= 4.0


def test_refiner_option_values_and_clear_errors(tmp_path: Path) -> None:
    assert resolve_refiner("none") is None and resolve_refiner(None) is None
    assert resolve_refiner("default") == DEFAULT_REFINER == resolve_refiner("auto")
    with pytest.raises(ModelError, match="does not exist"):
        resolve_refiner(str(tmp_path / "missing.onnx"))
    with pytest.raises(InputError, match="mask_refine must be auto, none, default or"):
        resolve_refiner(3)
    if packaged_model_path().is_file():  # a Mask R-CNN file is not a refiner
        with pytest.raises(ModelError, match="is not a mask refiner"):
            MaskRefiner(packaged_model_path())
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="cannot load mask refiner"):
        MaskRefiner(corrupt)


def test_a_refiner_file_of_an_older_kind_is_refused_by_name(tmp_path: Path) -> None:
    """A refiner made before the axis prior (three inputs) cannot read today's inputs: the error says so."""
    pytest.importorskip("torch", reason="the refiner's training needs the `train` extra")
    from wirewatch.train.refiner import RefinerNet, export

    older = tmp_path / "older.onnx"
    export(RefinerNet(), older, {"format": "wirewatch-mask-refiner-1"})
    with pytest.raises(ModelError, match=r"older kind .*train one again"):
        MaskRefiner(older)


def _frame_windows() -> tuple[np.ndarray, list[tuple[slice, slice, np.ndarray]], np.ndarray, np.ndarray]:
    image = np.zeros((64, 64), np.float32)
    image[20:28, 5:60] = 0.4
    image[5:60, 30:36] += 0.4  # a crossing
    yy, xx = np.mgrid[0:64, 0:64]
    horizontal = 1 / (1 + np.exp(-(4 - np.abs(yy - 23.5)) * 1.5)) * ((xx >= 4) & (xx < 61))
    vertical = 1 / (1 + np.exp(-(3 - np.abs(xx - 32.5)) * 1.5)) * ((yy >= 4) & (yy < 61))
    windows = [window(0, 0, horizontal), window(0, 0, vertical)]
    boxes = np.array([[4, 19.5, 61, 27.5], [29.5, 4, 35.5, 61]], np.float32)
    return image, windows, boxes, np.array([0.9, 0.8], np.float32)


def test_an_untrained_refiner_returns_the_pasted_masks_and_onnx_matches_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="the refiner's training needs the `train` extra")
    from wirewatch.train.refiner import RefinerNet, export

    image, windows, boxes, scores = _frame_windows()
    untrained = RefinerNet()
    export(untrained, tmp_path / "untrained.onnx", {"note": "test"})
    refiner = MaskRefiner(tmp_path / "untrained.onnx")
    assert refiner.metadata["note"] == "test"
    for before, after, box in zip(windows, refiner(image, windows, boxes, scores), boxes, strict=True):
        rows, cols = support_region(before, image.shape, box)  # type: ignore[misc]
        assert (after[0], after[1]) == (rows, cols)
        pasted = window_in(before, rows, cols)
        np.testing.assert_array_equal(after[2] >= 0.5, pasted >= 0.5)  # same masks
        assert np.abs(after[2] - np.clip(pasted, 1e-3, 1 - 1e-3)).max() < 1e-5
    # random weights: the ONNX graph computes what the torch net does, on any rectangle's size
    torch.manual_seed(3)
    net = RefinerNet()
    torch.nn.init.normal_(net.out.weight, std=0.5)
    export(net, tmp_path / "random.onnx", {})
    item = refinement_inputs(image, windows, boxes, scores)[1]
    assert item is not None
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(item[2])[None]))[0, 0].numpy()
    got = MaskRefiner(tmp_path / "random.onnx").run(item[2])
    assert got.shape == item[2].shape[1:]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(expected - item[2][1]).max() > 0.05  # the random net does change the probabilities


def best_iou(masks: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each predicted mask's IoU with the true wire it overlaps most."""
    i = (masks[:, None] & truth[None]).sum(axis=(2, 3))
    u = (masks[:, None] | truth[None]).sum(axis=(2, 3))
    return (i / np.maximum(u, 1)).max(axis=1)


def test_the_shipped_refiner_keeps_detections_and_moves_masks_towards_the_truth() -> None:
    """The shipped model on three synthetic frames (seeds never used in training): ``mask_refine=default``
    keeps every box, score and mask score, and the masks' mean IoU with their true wires rises."""
    if not packaged_model_path().is_file() or not DEFAULT_REFINER.is_file():
        pytest.skip("no default model or refiner shipped")
    from wirewatch.segment.onnx_backend import OnnxSegmenter

    plain = OnnxSegmenter("default", threads=1, mask_refine="none")
    refined = OnnxSegmenter("default", threads=1)  # auto: the shipped refiner was trained for the shipped model
    assert plain.refiner is None and refined.refiner is not None
    gains = []
    for seed in (515151, 525252, 535353):
        sample = generate(preset_config("ptychography"), seed=seed)
        image = sample.image.astype(np.float32) / 255.0
        one, two = plain.segment(image), refined.segment(image)
        assert len(one) >= 5
        np.testing.assert_array_equal(two.scores, one.scores)
        np.testing.assert_array_equal(two.boxes, one.boxes)
        np.testing.assert_array_equal(two.mask_scores, one.mask_scores)
        gains.append(best_iou(two.masks, sample.masks).mean() - best_iou(one.masks, sample.masks).mean())
    assert np.mean(gains) > 0.005, gains


def test_refiner_samples_and_a_short_training_run(tmp_path: Path) -> None:
    """Samples come from the runtime's own windows matched to true wires; a few seconds of training write
    checkpoints and metrics, and resuming continues the step count."""
    pytest.importorskip("torch", reason="the refiner's training needs the `train` extra")
    if not packaged_model_path().is_file():
        pytest.skip("no default model shipped")
    from wirewatch import synth
    from wirewatch.segment import load_segmenter
    from wirewatch.train.data import CocoFolder
    from wirewatch.train.refiner import extract, train

    synth.write_dataset(tmp_path / "ds", synth.SynthConfig.preset("ptychography"), count=2, seed=919, split=None)
    segmenter = load_segmenter("onnxruntime", model="default", score_threshold=0.05, mask_refine="none")
    samples = extract(segmenter, CocoFolder(tmp_path / "ds", "all"), 2, progress=False)
    assert len(samples) >= 10
    assert all(s.inputs.shape[1:] == s.target.shape and s.inputs.shape[0] == INPUT_CHANNELS for s in samples)
    assert np.median([s.pasted_iou for s in samples]) > 0.7  # matched to their own wires
    run = tmp_path / "run"
    run.mkdir()
    train(samples, run, seconds=1.0, progress=False)
    first = (run / "metrics.csv").read_text().splitlines()
    assert first[0] == "step,seconds,lr,loss" and len(first) >= 2
    step, spent = int(first[-1].split(",")[0]), float(first[-1].split(",")[1])
    # a budget beyond what the first call spent (one step can take over a second on a loaded machine)
    train(samples, run, seconds=spent + 1.0, resume=True, progress=False)
    assert int((run / "metrics.csv").read_text().splitlines()[-1].split(",")[0]) > step
    with pytest.raises(InputError, match="no refiner samples"):
        train([], run, seconds=1.0, progress=False)


def test_bench_model_times_the_refiner_beside_the_plain_masks(trained: dict[str, Path], tmp_path: Path) -> None:
    """``wirewatch bench model --mask-refine FILE``: one more onnxruntime CPU row with the same detections per
    frame (the refiner changes masks, never detections); a missing refiner is refused before any row runs."""
    import json

    from typer.testing import CliRunner

    from wirewatch.cli.app import app
    from wirewatch.train.refiner import RefinerNet, export

    refiner = tmp_path / "refiner.onnx"
    export(RefinerNet(), refiner, {})
    out = tmp_path / "bench.json"
    common = ["bench", "model", "--model", str(trained["onnx"]), "--checkpoint", str(trained["checkpoint"]),
              "--frames", "2", "--size", "96", "--score-threshold", "0.05"]
    res = CliRunner().invoke(app, [*common, "--mask-refine", str(refiner), "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = {r["runtime"]: r for r in json.loads(out.read_text())}
    assert list(rows) == ["pytorch eager", "onnxruntime", f"onnxruntime mask_refine={refiner}"]
    assert rows[f"onnxruntime mask_refine={refiner}"]["detections_mean"] == rows["onnxruntime"]["detections_mean"]
    bad = CliRunner().invoke(app, [*common, "--mask-refine", str(tmp_path / "missing.onnx")])
    assert bad.exit_code != 0 and isinstance(bad.exception, ModelError)
    assert "does not exist" in str(bad.exception)


def test_auto_uses_a_refiner_only_for_the_model_it_was_trained_for(trained: dict[str, Path], tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A refiner learns one model's habits: ``auto`` (the default) leaves another model's masks as pasted; an
    explicit refiner file is loaded for any model, with a warning when it was trained for another one."""
    import logging

    from wirewatch.segment.onnx_backend import OnnxSegmenter
    from wirewatch.segment.refine import TRAINED_FOR, file_sha256, load_refiner
    from wirewatch.train.refiner import RefinerNet, export

    toy = trained["onnx"]
    assert OnnxSegmenter(toy, threads=1).refiner is None  # the shipped refiner was not trained for the toy model
    mine, other = tmp_path / "mine.onnx", tmp_path / "other.onnx"
    export(RefinerNet(), mine, {TRAINED_FOR: file_sha256(toy)})
    export(RefinerNet(), other, {TRAINED_FOR: "0" * 64})
    with caplog.at_level(logging.WARNING, logger="wirewatch.segment.refine"):
        assert load_refiner(str(mine), toy) is not None
        assert not caplog.records
        assert load_refiner(str(other), toy) is not None
    assert "trained for another model" in caplog.text
    assert OnnxSegmenter(toy, threads=1, mask_refine=str(mine)).refiner is not None
    assert OnnxSegmenter(toy, threads=1, mask_refine="none").refiner is None


def test_a_refined_mask_that_is_not_the_same_wire_keeps_the_pasted_one(tmp_path: Path) -> None:
    """The guard: a refiner that would empty a mask (as it does on frames unlike its training ones, e.g. SEM's
    edge contrast) leaves the pasted mask; one that moves the edges a little is taken."""
    torch = pytest.importorskip("torch", reason="the refiner's training needs the `train` extra")
    from wirewatch.segment.refine import GUARD_IOU
    from wirewatch.train.refiner import RefinerNet, export

    image, windows, boxes, scores = _frame_windows()
    assert 0.5 <= GUARD_IOU < 1.0
    for bias, taken in ((-50.0, False), (1.0, True)):
        net = RefinerNet()
        with torch.no_grad():
            net.out.bias.fill_(bias)
        export(net, tmp_path / f"bias{bias}.onnx", {})
        for before, after in zip(windows, MaskRefiner(tmp_path / f"bias{bias}.onnx")(image, windows, boxes, scores),
                                 strict=True):
            if taken:
                assert after is not before and (after[2] >= 0.5).sum() > (before[2] >= 0.5).sum()
            else:
                assert after is before


def rectangle(shape: tuple[int, int], cx: float, cy: float, angle: float, half_length: float,
              half_width: float) -> np.ndarray:
    """A straight wire's mask (pixel centres inside the rectangle)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    along = np.cos(angle) * (xx - cx) + np.sin(angle) * (yy - cy)
    across = -np.sin(angle) * (xx - cx) + np.cos(angle) * (yy - cy)
    return (np.abs(along) <= half_length) & (np.abs(across) <= half_width)


def bounding_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("degrees", [-60.0, -35.0, 20.0, 50.0, 75.0])
def test_the_axis_of_a_straight_wire_follows_from_its_box_and_a_piece_of_its_mask(degrees: float) -> None:
    """The head drew only the middle third of a long diagonal wire; its box and that piece give the whole
    axis: angle within 2 degrees, half length within 3 px."""
    from wirewatch.segment.refine import box_axis

    angle = np.radians(degrees)
    wire = rectangle((300, 300), 150.0, 150.0, angle, 100.0, 5.0)
    piece = wire & rectangle((300, 300), 150.0, 150.0, angle, 33.0, 20.0)
    ys, xs = np.nonzero(piece)
    axis = box_axis(bounding_box(wire), np.stack([xs + 0.5, ys + 0.5], 1), float(np.sign(degrees)))
    assert axis is not None
    cx, cy, got_angle, half_length = axis
    assert abs(cx - 150.0) < 1.0 and abs(cy - 150.0) < 1.0
    assert abs(np.degrees(got_angle) - degrees) < 2.0 and abs(half_length - 100.0) < 3.0


def test_the_axis_prior_takes_the_diagonal_no_other_wire_claims() -> None:
    """Two wires cross in an X inside one box and the head's mask covers both; the other wire has its own
    confident detection, so the prior lies on this wire's diagonal."""
    from wirewatch.segment.refine import axis_prior

    shape = (200, 200)
    mine = rectangle(shape, 100.0, 100.0, np.radians(45.0), 80.0, 5.0)
    theirs = rectangle(shape, 100.0, 100.0, np.radians(-45.0), 80.0, 5.0)
    probs = np.where(mine | theirs, 0.9, 0.0).astype(np.float32)  # the head cannot tell the two apart
    others = np.where(theirs, 0.95, 0.0).astype(np.float32)
    everything = (slice(0, 200), slice(0, 200))
    prior = axis_prior(bounding_box(mine), probs, others, *everything)
    assert prior.shape == shape and prior.min() >= 0.0 and prior.max() <= 1.0
    assert prior[mine].mean() > 0.6 and prior[theirs & ~mine].mean() < 0.1
    assert not axis_prior(None, probs, others, *everything).any()


def test_the_guard_takes_a_refined_mask_that_fills_the_detections_box(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A long wire whose pasted mask is its middle third: a refined mask that covers the whole wire differs
    from the pasted one (IoU ~0.3) but fills the box, so it is taken; one that runs off elsewhere is not."""
    pytest.importorskip("torch", reason="the refiner's training needs the `train` extra")
    from wirewatch.segment.refine import GUARD_BOX_IOU
    from wirewatch.train.refiner import RefinerNet, export

    shape = (200, 200)
    wire = rectangle(shape, 100.0, 100.0, np.radians(40.0), 80.0, 5.0)
    piece = wire & rectangle(shape, 100.0, 100.0, np.radians(40.0), 27.0, 20.0)
    image = np.where(wire, 0.5, 0.02).astype(np.float32)
    box = bounding_box(wire)
    pasted = [window(0, 0, np.where(piece, 0.9, 0.0))]
    export(RefinerNet(), tmp_path / "r.onnx", {})
    refiner = MaskRefiner(tmp_path / "r.onnx")
    for answer, taken in ((wire, True), (rectangle(shape, 40.0, 150.0, 0.0, 30.0, 5.0), False)):
        monkeypatch.setattr(refiner, "run", lambda z, a=answer: np.where(
            a[support_region(pasted[0], shape, box)], 0.95, 0.05).astype(np.float32))  # type: ignore[index]
        (after,) = refiner(image, pasted, box[None], np.array([0.99], np.float32))
        assert (after is not pasted[0]) == taken
        # a detection the head gave no mask (nothing at the threshold) gets none: its particle would be new
        hesitant = [window(0, 0, np.where(piece, 0.4, 0.0))]
        (after,) = refiner(image, hesitant, box[None], np.array([0.99], np.float32))
        assert after is hesitant[0]
    assert 0.5 < GUARD_BOX_IOU < 1.0


def test_a_wider_refiner_starts_from_a_narrower_ones_answer() -> None:
    """``--init``: a 16-channel refiner with three inputs (before the axis prior) widened to 24 channels and
    four inputs computes the same logits; a checkpoint that does not fit is refused by name."""
    torch = pytest.importorskip("torch", reason="the refiner's training needs the `train` extra")
    from torch import nn

    from wirewatch.train.refiner import RefinerNet, widened

    torch.manual_seed(0)
    old = RefinerNet(16)
    old.inp = nn.Conv2d(3, 16, 3, padding=1)
    nn.init.normal_(old.out.weight, std=0.3)
    new = widened(RefinerNet(24), old.state_dict())
    z = torch.rand(2, INPUT_CHANNELS, 30, 40)
    with torch.no_grad():
        np.testing.assert_allclose(new(z).numpy(), old(z[:, :3]).numpy(), atol=1e-5)
    with pytest.raises(InputError, match="does not fit"):
        widened(RefinerNet(8), old.state_dict())


def test_samples_match_by_mask_first_and_by_box_where_a_confident_mask_misses() -> None:
    pytest.importorskip("torch", reason="the refiner's training needs the `train` extra")
    from wirewatch.train.refiner import matches

    mask_iou = np.array([[0.9, 0.0], [0.0, 0.2], [0.0, 0.1]])
    box_iou = np.array([[0.9, 0.0], [0.0, 0.95], [0.0, 0.97]])
    # detection 1's mask misses wire 1 but its box finds it; detection 2 is not confident
    assert matches(mask_iou, box_iou, np.array([True, True, False])) == [(0, 0), (1, 1)]
    assert matches(mask_iou, box_iou, np.array([True, False, False])) == [(0, 0)]


def test_extra_data_adds_another_presets_samples_and_reports_each_folders_val(tmp_path: Path) -> None:
    """``--extra-data DIR:IMAGES`` pools a second preset's samples with the main folder's, and the summary gives
    the val IoU of every folder (the refiner is checked on each contrast it learnt); a malformed value is refused
    by name before anything runs."""
    pytest.importorskip("torch", reason="the refiner's training needs the `train` extra")
    if not packaged_model_path().is_file():
        pytest.skip("no default model shipped")
    import json

    from wirewatch import synth
    from wirewatch.train.refiner import extra_folder, main

    for name, preset, seed in (("ptycho", "ptychography", 921), ("sem", "sem", 922)):
        synth.write_dataset(tmp_path / name, synth.SynthConfig.preset(preset), count=2, seed=seed, split=0.5)
    main(["--data", str(tmp_path / "ptycho"), "--images", "1", "--extra-data", f"{tmp_path / 'sem'}:1",
          "--val-images", "1", "--time-budget", "1", "--out", str(tmp_path / "run"), "--no-progress"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["extra_data"] == {str(tmp_path / "sem"): 1}
    assert set(summary["val_by_folder"]) == {str(tmp_path / "ptycho"), str(tmp_path / "sem")}
    assert summary["val_mean_iou_refined"] == summary["val_by_folder"][str(tmp_path / "ptycho")]["refined"]
    assert (tmp_path / "run" / "refiner.onnx").is_file()
    assert extra_folder(f"{tmp_path / 'sem'}:400") == (tmp_path / "sem", 400)
    for bad, why in ((f"{tmp_path / 'sem'}", "not DIR:IMAGES"), (f"{tmp_path / 'sem'}:0", "not DIR:IMAGES"),
                     (f"{tmp_path / 'nope'}:5", "is not a folder")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            extra_folder(bad)
