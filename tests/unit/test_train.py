"""Training: data pipeline, schedule, weight loading, a smoke run that learns, and exact resume."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the `train` extra (torch, torchvision)")

from wirewatch import coco  # noqa: E402
from wirewatch.coco import boxes_of  # noqa: E402
from wirewatch.errors import InputError, ModelError  # noqa: E402
from wirewatch.train.config import TrainConfig  # noqa: E402
from wirewatch.train.data import Augmentation, CocoFolder, FolderMix, Sample, augment, random_crop  # noqa: E402
from wirewatch.train.loop import Trainer, data_config_hash, lr_factor, read_checkpoint  # noqa: E402
from wirewatch.train.model import InitReport, build_model, grey_to_model_input, load_init_weights  # noqa: E402
from wirewatch.train.toy import write_toy_dataset  # noqa: E402
from wirewatch.train.validate import coco_ap  # noqa: E402


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), n_train=8, n_val=2, size=96, seed=3)


def smoke_config(data: Path, out: Path, **extra: object) -> TrainConfig:
    base = dict(data=str(data), out=str(out), steps=8, batch_size=2, crop_size=64, warmup_steps=2, lr=0.01,
                val_every=100, val_images=0, checkpoint_every=4, log_every=2, threads=2, precise_bn_batches=2)
    base.update(extra)
    return TrainConfig.model_validate(base)


def l_shape(size: int = 64) -> Sample:
    """An asymmetric instance, so any flip/rotation mismatch between image and mask shows."""
    mask = np.zeros((1, size, size), bool)
    mask[0, 5:40, 8:14] = True
    mask[0, 34:40, 8:30] = True
    return Sample(mask[0].astype(np.float32) * 0.8, mask, boxes_of(mask))


# ------------------------------------------------------------------ data
def test_augmentation_moves_image_and_masks_together() -> None:
    rng = np.random.default_rng(0)
    sample = l_shape()
    for _ in range(20):
        out = augment(sample, Augmentation(), rng)
        bright = out.image > out.image.mean()
        assert np.array_equal(bright, out.masks[0])
        assert out.masks[0].sum() == sample.masks[0].sum()
        np.testing.assert_array_equal(out.boxes, boxes_of(out.masks))
        assert out.image.dtype == np.float32 and out.image.min() >= 0.0 and out.image.max() <= 1.0


def test_augmentation_options_change_pixels_not_masks() -> None:
    sample = l_shape()
    plain = augment(sample, Augmentation(flip_p=0, rot90=False, brightness=(1, 1), contrast=(1, 1)),
                    np.random.default_rng(1))
    np.testing.assert_allclose(plain.image, sample.image, atol=1e-6)
    inverted = augment(sample, Augmentation(flip_p=0, rot90=False, brightness=(1, 1), contrast=(1, 1),
                                            invert_p=1.0), np.random.default_rng(1))
    np.testing.assert_allclose(inverted.image, 1.0 - sample.image, atol=1e-6)
    noisy = augment(sample, Augmentation(noise_sigma_max=0.1, blur_sigma_max=2.0), np.random.default_rng(2))
    assert noisy.masks.sum() == sample.masks.sum()


def test_random_crop_drops_slivers_and_keeps_boxes_tight() -> None:
    masks = np.zeros((2, 100, 100), bool)
    masks[0, 10:90, 48:52] = True  # crosses every crop of 40 px... mostly
    masks[1, 0:3, 0:3] = True  # 9 px: below the 16 px minimum wherever it lands
    sample = Sample(masks.any(0).astype(np.float32), masks, boxes_of(masks))
    rng = np.random.default_rng(0)
    for _ in range(30):
        crop = random_crop(sample, 40, rng, min_area_px=16)
        assert crop.image.shape == (40, 40)
        assert all(m.sum() >= 16 for m in crop.masks)
        np.testing.assert_array_equal(crop.boxes, boxes_of(crop.masks))
    with pytest.raises(InputError, match="smaller than the crop"):
        random_crop(sample, 128, rng)


def test_coco_folder_reads_synth_layout_and_rejects_other_folders(toy: Path, tmp_path: Path) -> None:
    folder = CocoFolder(toy, "train")
    sample = folder.load(0)
    assert sample.image.shape == (96, 96) and sample.image.dtype == np.float32
    assert len(sample.masks) == len(sample.boxes) > 0
    with pytest.raises(InputError, match=r"no train\.json"):
        CocoFolder(tmp_path, "train")


def test_folder_mix_draws_in_its_fractions_and_alone_is_the_folder(toy: Path, tmp_path: Path) -> None:
    """extra_data: samples come from each folder in its share; one folder keeps the old random sequence."""
    other = write_toy_dataset(tmp_path / "other", n_train=4, n_val=1, size=80, seed=4)
    mix = FolderMix.open([(str(toy), 0.7), (str(other), 0.3)])
    assert len(mix) == 8 + 4
    rng = np.random.default_rng(0)
    sizes = [mix.draw(rng).image.shape[0] for _ in range(400)]
    assert sizes.count(80) / len(sizes) == pytest.approx(0.3, abs=0.06)
    alone, folder = FolderMix.open([(str(toy), 1.0)]), CocoFolder(toy, "train")
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(5):
        np.testing.assert_array_equal(alone.draw(a).image, folder.draw(b).image)
    with pytest.raises(InputError, match="sum to 1"):
        FolderMix([folder, folder], [0.5, 0.6])


def test_extra_data_is_validated_recorded_and_trained_on(toy: Path, tmp_path: Path) -> None:
    other = write_toy_dataset(tmp_path / "other", n_train=4, n_val=1, size=96, seed=4)
    with pytest.raises(ValueError, match="must leave `data` a share"):
        smoke_config(toy, tmp_path / "bad", extra_data=[{"path": str(other), "fraction": 0.6},
                                                        {"path": str(other), "fraction": 0.4}])
    cfg = smoke_config(toy, tmp_path / "mix", steps=2, extra_data=[{"path": str(other), "fraction": 0.25}])
    assert cfg.training_parts() == [(str(toy), 0.75), (str(other), 0.25)]
    trainer = Trainer(cfg, show_progress=False)
    trainer.run()
    assert trainer.data_hash not in (data_config_hash(toy), data_config_hash(other))
    saved = read_checkpoint(tmp_path / "mix" / "final.pt")
    assert saved["data_config_hash"] == trainer.data_hash
    assert saved["config"]["extra_data"] == [{"path": str(other), "fraction": 0.25}]


# ------------------------------------------------------------------ schedule, model, weights
def test_lr_schedule_warms_up_then_decays_to_zero() -> None:
    assert lr_factor(0, 0.0, 200) == pytest.approx(0.001)
    assert lr_factor(100, 0.0, 200) == pytest.approx(0.5005)
    assert lr_factor(200, 0.0, 200) == pytest.approx(1.0)
    assert lr_factor(500, 0.5, 200) == pytest.approx(0.5)
    assert lr_factor(900, 1.0, 200) == pytest.approx(0.0)
    assert lr_factor(950, 1.3, 200) == pytest.approx(0.0)


def test_unknown_variant_is_a_clear_error() -> None:
    with pytest.raises(InputError, match=r"unknown model variant 'tiny'.*compact"):
        build_model("tiny")


def test_init_weights_skip_heads_of_another_class_count(tmp_path: Path) -> None:
    source = build_model("compact", num_classes=3)
    path = tmp_path / "coco_like.pth"
    torch.save(source.state_dict(), path)
    target = build_model("compact", num_classes=2)
    report = load_init_weights(target, path)
    assert "roi_heads.box_predictor.cls_score.weight" in report.skipped_shape
    assert "roi_heads.mask_predictor.mask_fcn_logits.weight" in report.skipped_shape
    assert report.loaded > 100
    name = "backbone.body.layer1.0.conv1.weight"
    assert torch.equal(target.state_dict()[name], source.state_dict()[name])
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read weights"):
        load_init_weights(target, junk)
    with pytest.raises(InputError, match="not found"):
        load_init_weights(target, tmp_path / "absent.pth")


def grow(tmp_path: Path, small: str, large: str) -> tuple[torch.nn.Module, torch.nn.Module, InitReport, Path]:
    """A random ``small`` model saved to a file, and a ``large`` model initialised from that file."""
    torch.manual_seed(0)
    source = build_model(small).eval()
    path = tmp_path / f"{small}.pth"
    torch.save(source.state_dict(), path)
    grown = build_model(large).eval()
    return source, grown, load_init_weights(grown, path), path


def same_detections(source: torch.nn.Module, grown: torch.nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both models' detections on ``image`` are the same boxes and masks; returns the source's."""
    with torch.no_grad():
        a = source([grey_to_model_input(image)])[0]
        b = grown([grey_to_model_input(image)])[0]
    assert len(a["masks"]) > 0 and torch.equal(a["boxes"], b["boxes"])
    assert torch.allclose(a["masks"], b["masks"], atol=1e-6)
    return a


def test_image_guided_variant_starts_as_the_model_it_grew_from(tmp_path: Path) -> None:
    """compact56 -> compact56i: the mask head's first conv gains the frame's 4 channels at zero weight, so
    the grown model predicts the same masks; with weight on them, the frame changes the masks."""
    source, grown, report, _ = grow(tmp_path, "compact56", "compact56i")
    assert report.widened == ("roi_heads.mask_head.0.0.weight",) and not report.skipped_shape
    first = grown.state_dict()["roi_heads.mask_head.0.0.weight"]
    assert first.shape[1] == 128 + 4 and torch.count_nonzero(first[:, 128:]) == 0
    image = torch.rand(96, 96)
    a = same_detections(source, grown, image)
    with torch.no_grad():
        grown.state_dict()["roi_heads.mask_head.0.0.weight"][:, 128:] = 1.0
        c = grown([grey_to_model_input(image)])[0]
    assert not torch.allclose(a["masks"], c["masks"], atol=1e-3)


def test_deeper_mask_head_starts_as_the_model_it_grew_from(tmp_path: Path) -> None:
    """compact -> compact_m4: the two mask-head convs the file lacks start as identities (each follows a
    ReLU, so its input is non-negative), so the grown model predicts the same masks; trained, they move."""
    source, grown, report, path = grow(tmp_path, "compact", "compact_m4")
    assert report.deepened == ("roi_heads.mask_head.2.0.weight", "roi_heads.mask_head.3.0.weight")
    assert report.loaded == len(source.state_dict()) and not report.missing and not report.skipped_shape
    assert "2 mask-head convs added as identities" in report.summary()
    state = grown.state_dict()
    assert torch.count_nonzero(state["roi_heads.mask_head.3.0.bias"]) == 0
    assert torch.count_nonzero(state["roi_heads.mask_head.3.0.weight"]) == 128  # one 1 per channel, centre tap
    image = torch.rand(96, 96)
    a = same_detections(source, grown, image)
    with torch.no_grad():
        state["roi_heads.mask_head.2.0.weight"].mul_(-1.0)  # a negated identity + ReLU blanks the head
        c = grown([grey_to_model_input(image)])[0]
    assert not torch.allclose(a["masks"], c["masks"], atol=1e-3)
    # A file that already has the deeper head loads as it is: nothing is replaced by identities.
    torch.save(grown.state_dict(), path)
    again = load_init_weights(build_model("compact_m4"), path)
    assert again.deepened == () and again.loaded == len(grown.state_dict())


# ------------------------------------------------------------------ metrics
def test_coco_ap_counts_frames_with_more_than_100_detections() -> None:
    rng = np.random.default_rng(0)
    images, anns, results = [], [], []
    for image_id in (1, 2):
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": 128, "width": 128})
        for k in range(120):
            mask = np.zeros((128, 128), bool)
            y, x = divmod(k, 12)
            mask[y * 10 + 1: y * 10 + 8, x * 10 + 1: x * 10 + 8] = True
            anns.append(coco.annotation(len(anns) + 1, image_id, mask))
            results.append(coco.result(image_id, mask, float(rng.uniform(0.5, 1.0))))
    metrics = coco_ap(coco.dataset(images, anns), results)
    assert metrics["segm.AP"] == pytest.approx(1.0)
    assert metrics["bbox.AP50"] == pytest.approx(1.0)
    assert coco_ap(coco.dataset(images, anns), [])["segm.AP"] == 0.0


# ------------------------------------------------------------------ the loop
def test_smoke_run_learns_and_resume_is_exact(toy: Path, tmp_path: Path) -> None:
    straight = Trainer(smoke_config(toy, tmp_path / "a"), show_progress=False)
    losses: list[float] = []
    result = straight.run(on_step=lambda step, values: losses.append(values["loss"]))
    assert result.step == 8 and result.final_checkpoint is not None
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    rows = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,elapsed_s,lr,loss") and len(rows) == 1 + 4

    interrupted = Trainer(smoke_config(toy, tmp_path / "b"), show_progress=False)
    interrupted.run(max_steps_this_call=4)
    assert read_checkpoint(tmp_path / "b" / "last.pt")["step"] == 4
    # A kill between checkpoints leaves rows for steps the resumed run trains again.
    metrics_b = tmp_path / "b" / "metrics.csv"
    metrics_b.write_text(metrics_b.read_text() + "6,1.0,0.01,12345.6" + "," * (rows[0].count(",") - 3) + "\n")
    resumed = Trainer(smoke_config(toy, tmp_path / "b"), resume=True, show_progress=False)
    assert resumed.step == 4
    resumed.run()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from the uninterrupted one"
    steps = [line.split(",")[0] for line in metrics_b.read_text().splitlines()[1:]]
    assert steps == [line.split(",")[0] for line in rows[1:]] == ["2", "4", "6", "8"]
    assert "12345.6" not in metrics_b.read_text()


def test_worker_processes_make_the_samples_their_seeds_name(toy: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """loader_workers: batches come from worker processes, each sample fixed by its seed alone, and a run
    that uses them trains and validates like the in-process one."""
    from wirewatch.train.loader import ParallelBatches, make_sample

    aug = Augmentation()
    loader = ParallelBatches([(str(toy), 1.0)], 64, 16, aug, workers=2, batch_size=3, prefetch=2)
    try:
        batch = loader.batch_now(np.random.default_rng(5))
    finally:
        loader.close()
    seeds = np.random.default_rng(5).integers(0, 2**63, size=3)
    folder = CocoFolder(toy, "train")
    for got, seed in zip(batch, seeds, strict=True):
        want = make_sample(folder, int(seed), 64, 16, aug)
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.masks, want.masks)  # bit-packed across the process boundary
        np.testing.assert_array_equal(got.boxes, want.boxes)
        assert got.masks.dtype == bool and got.masks.shape == (len(got.boxes), 64, 64)

    from_workers: list[int] = []
    real_next_batch = ParallelBatches.next_batch
    monkeypatch.setattr(ParallelBatches, "next_batch",
                        lambda self, rng: from_workers.append(1) or real_next_batch(self, rng))
    losses: list[float] = []
    run = Trainer(smoke_config(toy, tmp_path / "w", loader_workers=2, val_images=2), show_progress=False)
    result = run.run(on_step=lambda step, values: losses.append(values["loss"]))
    assert result.step == 8 and result.final_checkpoint is not None and run.loader is None
    assert len(from_workers) == 8  # every step's batch came from the workers
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    assert {"bbox.AP", "segm.AP"} <= set(result.last_metrics)

    # run() shuts its workers down when it returns; a run continued by a second call makes them again
    # rather than falling back to in-process crops.
    again = Trainer(smoke_config(toy, tmp_path / "w2", loader_workers=2, steps=4), show_progress=False)
    again.run(max_steps_this_call=2)
    assert again.loader is None and again.step == 2
    again.run()
    assert again.step == 4 and len(from_workers) == 8 + 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a CUDA GPU")
def test_asking_for_a_gpu_without_one_is_a_clear_error(toy: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no CUDA GPU"):
        Trainer(smoke_config(toy, tmp_path / "g", device="cuda"), show_progress=False)
    with pytest.raises(ValueError, match="device"):
        smoke_config(toy, tmp_path / "g", device="gpu0")


def test_train_only_moves_the_named_heads_and_nothing_else(toy: Path, tmp_path: Path) -> None:
    """``train_only``: the mask branch learns on a frozen detector; frozen weights and BatchNorm statistics
    stay bit-identical (BatchNorm in eval mode while training), and a resumed run keeps the freeze."""
    heads = ["roi_heads.mask_head", "roi_heads.mask_predictor"]
    trainer = Trainer(smoke_config(toy, tmp_path / "h", steps=4, train_only=heads), show_progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert len(trainer.frozen_batchnorm) == 20  # ResNet-18's BatchNorm layers
    trainer.run()
    after = trainer.model.state_dict()
    moved = {k for k in after if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(tuple(heads)) for k in moved), sorted(moved)[:5]
    assert any(k.startswith("roi_heads.mask_predictor") for k in moved)
    resumed = Trainer(smoke_config(toy, tmp_path / "h", steps=4, train_only=heads), resume=True, show_progress=False)
    assert {n for n, p in resumed.model.named_parameters() if p.requires_grad} == \
        {n for n in dict(resumed.model.named_parameters()) if n.startswith(tuple(heads))}
    with pytest.raises(InputError, match=r"train_only prefixes \['roi_heads.mask_hed'\] match no parameter"):
        Trainer(smoke_config(toy, tmp_path / "x", train_only=["roi_heads.mask_hed"]), show_progress=False)


def test_loss_weights_scale_the_optimised_sum(toy: Path, tmp_path: Path) -> None:
    """The logged total is the weighted sum of the (unweighted) logged terms; zero weights and no weight decay
    leave every parameter where it was, so the weights really reach the gradient."""
    trainer = Trainer(smoke_config(toy, tmp_path / "w", loss_weights={"loss_mask": 3.0}), show_progress=False)
    values = trainer.train_step()
    terms = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")
    assert values["loss"] == pytest.approx(sum(values[k] for k in terms) + 2 * values["loss_mask"], rel=1e-5)
    frozen = Trainer(smoke_config(toy, tmp_path / "z", weight_decay=0.0, loss_weights=dict.fromkeys(terms, 0.0)),
                     show_progress=False)
    before = {k: v.clone() for k, v in frozen.model.named_parameters()}
    frozen.train_step()
    assert all(torch.equal(before[k], v) for k, v in frozen.model.named_parameters())
    with pytest.raises(ValueError, match=r"unknown loss terms \['loss_masks'\]"):
        smoke_config(toy, tmp_path / "x", loss_weights={"loss_masks": 2.0})
    with pytest.raises(ValueError, match="loss weights must be >= 0"):
        smoke_config(toy, tmp_path / "x", loss_weights={"loss_mask": -1.0})


def test_validation_writes_ap_columns_and_curve(toy: Path, tmp_path: Path) -> None:
    trainer = Trainer(smoke_config(toy, tmp_path / "v", steps=2, val_every=2, val_images=2), show_progress=False)
    result = trainer.run()
    assert set(result.last_metrics) >= {"bbox.AP", "segm.AP", "segm.AP50"}
    last = (tmp_path / "v" / "metrics.csv").read_text().splitlines()[-1].split(",")
    assert last[-1] != ""  # segm.AP75 filled on the validation row
    assert (tmp_path / "v" / "curve.png").stat().st_size > 10_000


def test_train_cli_reports_bad_usage(toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from wirewatch.cli.app import main

    monkeypatch.setattr(sys, "argv", ["wirewatch", "train", "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "--data is required" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["wirewatch", "train", "--out", str(tmp_path / "absent"), "--resume"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "no config.yaml" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["wirewatch", "train", "--data", str(toy), "--out", str(tmp_path / "r"),
                                      "--variant", "huge"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "variant" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["wirewatch", "train", "--data", str(toy), "--out", str(tmp_path / "r"),
                                      "--extra-data", str(toy)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "expected DIR:FRACTION" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["wirewatch", "train", "--data", str(toy), "--out", str(tmp_path / "r"),
                                      "--extra-data", f"{toy}:1.5"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "fraction" in capsys.readouterr().err


def test_train_cli_extra_data_reaches_the_run_config(toy: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from wirewatch.cli.app import main

    other = write_toy_dataset(tmp_path / "other", n_train=4, n_val=1, size=96, seed=4)
    cfg = tmp_path / "smoke.yaml"
    cfg.write_text("steps: 1\nbatch_size: 1\ncrop_size: 64\nwarmup_steps: 1\nval_images: 0\nprecise_bn_batches: 1\n")
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["wirewatch", "train", "--config", str(cfg), "--data", str(toy), "--out", str(run),
                                      "--extra-data", f"{other}:0.3", "--no-progress"])
    main()
    saved = read_checkpoint(run / "final.pt")["config"]
    assert saved["extra_data"] == [{"path": str(other), "fraction": 0.3}]


def test_train_cli_runs_resumes_and_extends_the_schedule(toy: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from wirewatch.cli.app import main

    cfg = tmp_path / "smoke.yaml"
    cfg.write_text("steps: 2\nbatch_size: 1\ncrop_size: 64\nwarmup_steps: 1\nval_images: 0\n"
                   "checkpoint_every: 1\nlog_every: 1\n")
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["wirewatch", "train", "--config", str(cfg), "--data", str(toy),
                                      "--out", str(run), "--no-progress"])
    main()
    assert "step 2 in" in capsys.readouterr().out
    assert read_checkpoint(run / "final.pt")["step"] == 2
    monkeypatch.setattr(sys, "argv", ["wirewatch", "train", "--config", str(cfg), "--data", str(toy),
                                      "--out", str(run)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "already holds a run" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["wirewatch", "train", "--out", str(run), "--resume", "--steps", "3",
                                      "--no-progress"])
    main()
    assert read_checkpoint(run / "final.pt")["step"] == 3
    assert "steps: 3" in (run / "config.yaml").read_text()


def test_cli_usage_errors_are_one_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """typer >= 0.20 vendors click: usage errors still print click's message and exit with code 2."""
    from wirewatch.cli.app import main

    monkeypatch.setattr(sys, "argv", ["wirewatch", "train"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Missing option '--out'" in err and "Traceback" not in err


def test_precise_batchnorm_averages_batch_statistics_and_keeps_weights() -> None:
    from wirewatch.train.batchnorm import precise_batchnorm

    torch.manual_seed(0)
    model = build_model("compact")
    gen = torch.Generator().manual_seed(1)
    batches = [[torch.rand(3, 64, 64, generator=gen) * (k + 1) for _ in range(2)] for k in range(3)]
    bn = model.backbone.body.bn1
    seen: list[torch.Tensor] = []
    hook = bn.register_forward_pre_hook(lambda _m, args: seen.append(args[0].mean(dim=(0, 2, 3))))
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert precise_batchnorm(model, batches) == 3
    hook.remove()
    # Cumulative average of the three batch means (the batches differ in scale, so an EMA would not match).
    assert torch.allclose(bn.running_mean, torch.stack(seen).mean(0), atol=1e-5)
    assert bn.momentum == 0.1 and model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    before = bn.running_mean.clone()
    assert precise_batchnorm(model, []) == 0
    assert torch.equal(bn.running_mean, before)  # nothing seen: statistics kept


def test_final_checkpoint_has_precise_batchnorm(toy: Path, tmp_path: Path) -> None:
    trainer = Trainer(smoke_config(toy, tmp_path / "p", steps=2, precise_bn_batches=3), show_progress=False)
    trainer.run()
    log_text = (tmp_path / "p" / "train.log").read_text()
    assert "step 2 BatchNorm statistics re-estimated on 3 batches" in log_text
    final = read_checkpoint(tmp_path / "p" / "final.pt")["model"]
    assert int(final["backbone.body.bn1.num_batches_tracked"]) == 3  # reset, then 3 batches


def test_diagnosis_separates_the_mask_head_from_the_grid(trained: dict[str, Path], tmp_path: Path) -> None:
    """``wirewatch.train.diagnose``: ground-truth boxes score box AP 1; true masks encoded on the model's
    grid and pasted back score near 1 (the ceiling), the finer grid at least as high; the 4-step toy
    model's own mask head is far below that ceiling. Boxes grown 1x reproduce the plain rows (up to float
    rounding of a threshold pixel)."""
    import json

    from wirewatch.train.diagnose import main

    out = tmp_path / "diagnosis.json"
    main(["--checkpoint", str(trained["checkpoint"]), "--data", str(trained["data"]), "--images", "3",
          "--json", str(out), "--expand", "1", "1.25"])
    rows = json.loads(out.read_text())
    for kind in ("model", "gt_boxes"):
        assert rows[f"{kind}_x1"] == pytest.approx(rows[kind], abs=1e-3)
        assert rows[f"{kind}_x1.25"]["mask_grid"] == 28 and 0 <= rows[f"{kind}_x1.25"]["segm.AP"] <= 1
    assert rows["grid"]["mask_grid"] == 28 and rows["grid_2x"]["mask_grid"] == 56
    assert rows["gt_boxes"]["bbox.AP"] > 0.99 and rows["grid"]["bbox.AP"] > 0.99
    assert rows["grid"]["segm.AP"] >= 0.9 and rows["grid_2x"]["segm.AP"] >= rows["grid"]["segm.AP"] - 0.01
    assert rows["gt_boxes"]["segm.AP"] < rows["grid"]["segm.AP"] - 0.3


def test_each_run_logs_to_its_own_file_only(toy: Path, tmp_path: Path) -> None:
    """Two Trainers in one process: the second run's lines go to its train.log and not to the first's, and a
    handler the user attached to the logger stays."""
    import logging

    user_log = tmp_path / "user.log"
    user_handler = logging.FileHandler(user_log)
    train_log = logging.getLogger("wirewatch.train")
    train_log.addHandler(user_handler)
    try:
        Trainer(smoke_config(toy, tmp_path / "first", steps=2), show_progress=False).run()
        first = (tmp_path / "first" / "train.log").read_text()
        Trainer(smoke_config(toy, tmp_path / "second", steps=2), show_progress=False).run()
        second = (tmp_path / "second" / "train.log").read_text()
        assert str(tmp_path / "second") in second and str(tmp_path / "first") not in second
        assert (tmp_path / "first" / "train.log").read_text() == first  # nothing appended by the second run
        assert user_handler in train_log.handlers
        assert str(tmp_path / "second") in user_log.read_text()
        ours = [h for h in train_log.handlers if getattr(h, "wirewatch_run_log", False)]
        assert len(ours) == 1
    finally:
        train_log.removeHandler(user_handler)
        user_handler.close()
