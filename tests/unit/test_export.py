"""``wirewatch export``: clear errors for bad checkpoints and formats, metadata contents, GPU-only TensorRT."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="exporting needs the `train` extra (torch, torchvision, onnx)")

from wirewatch.export.onnx import export_metadata  # noqa: E402
from wirewatch.segment.model_files import ModelMetadata  # noqa: E402


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    from wirewatch.cli.app import main

    monkeypatch.setattr(sys, "argv", ["wirewatch", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_missing_and_foreign_checkpoints_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert run_cli(monkeypatch, "export", "--checkpoint", str(tmp_path / "absent.pt"), "--out", str(out)) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    foreign = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(3)}, foreign)
    assert run_cli(monkeypatch, "export", "--checkpoint", str(foreign), "--out", str(out)) == 2
    assert "not a wirewatch training checkpoint" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_text("nope")
    assert run_cli(monkeypatch, "export", "--checkpoint", str(junk), "--out", str(out)) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_format_and_tensorrt_without_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from wirewatch.segment.tensorrt_backend import gpu_unavailable_reason

    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"")
    assert run_cli(monkeypatch, "export", "--checkpoint", str(ckpt), "--out", "x", "--format", "tflite") == 2
    assert "unknown export format 'tflite'; allowed: onnx, tensorrt" in capsys.readouterr().err
    reason = gpu_unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT is available here; the GPU test builds a real engine")
    assert run_cli(monkeypatch, "export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.engine"),
                   "--format", "tensorrt") == 2
    err = capsys.readouterr().err
    assert "cannot build a TensorRT engine" in err and reason in err


def test_metadata_round_trips_through_the_runtime_parser() -> None:
    state = {"variant": "compact", "data_config_hash": "abc123", "step": 1200,
             "config": {"variant": "compact", "detections_per_image": 150, "lr": 0.02},
             "last_metrics": {"segm.AP": 0.5}}
    meta = export_metadata(state, (512, 384), score_threshold=0.6, mask_threshold=0.4)
    parsed = ModelMetadata.from_mapping(meta, "test")
    assert (parsed.input_height, parsed.input_width) == (512, 384)
    assert parsed.class_names == ("background", "nanowire")
    assert parsed.score_threshold == 0.6 and parsed.mask_threshold == 0.4
    assert parsed.training_data_config_hash == "abc123" and parsed.variant == "compact"
    assert json.loads(meta["training_config"])["lr"] == 0.02
    assert meta["detections_per_image"] == "150" and meta["training_step"] == "1200"


def test_level_merge_by_gather_equals_torchvision() -> None:
    from torchvision.ops.poolers import _onnx_merge_levels

    from wirewatch.export.onnx import _merge_levels_by_gather

    gen = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 4, (50,), generator=gen)
    per_level = [torch.randn(int((levels == k).sum()), 3, 7, 7, generator=gen) for k in range(4)]
    assert torch.equal(_merge_levels_by_gather(levels, per_level), _onnx_merge_levels(levels, per_level))
