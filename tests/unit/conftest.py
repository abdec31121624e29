"""Fixtures shared by unit-test modules: one small trained-and-exported model for the whole session."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A compact model trained a few steps on toy rods, exported through the CLI."""
    pytest.importorskip("torch", reason="exporting needs the `train` extra (torch, torchvision, onnx)")
    return train_and_export(tmp_path_factory.mktemp("onnx"), "compact")


def train_and_export(root: Path, variant: str, steps: int = 4) -> dict[str, Path]:
    """Train ``variant`` ``steps`` steps on toy rods under ``root`` and export it (fp32) through the CLI."""
    from wirewatch.cli.app import main
    from wirewatch.train.config import TrainConfig
    from wirewatch.train.loop import Trainer
    from wirewatch.train.toy import write_toy_dataset

    data = write_toy_dataset(root / "data", n_train=6, n_val=2, size=96, seed=5)
    cfg = TrainConfig(data=str(data), out=str(root / "run"), variant=variant, steps=steps, batch_size=2,
                      crop_size=64, warmup_steps=2, lr=0.01, val_images=0, checkpoint_every=steps, log_every=2,
                      precise_bn_batches=2)
    Trainer(cfg, show_progress=False).run()
    onnx_path = root / "model.onnx"
    argv = sys.argv
    sys.argv = ["wirewatch", "export", "--checkpoint", str(root / "run" / "final.pt"), "--out", str(onnx_path),
                "--height", "96", "--width", "96", "--score-threshold", "0.3", "--precision", "fp32"]
    try:
        main()  # returns normally on success; errors exit with code 2
    finally:
        sys.argv = argv
    assert onnx_path.is_file()
    return {"data": data, "checkpoint": root / "run" / "final.pt", "onnx": onnx_path}


def toy_image(data: Path, index: int) -> np.ndarray:
    import cv2

    return (cv2.imread(str(data / "images" / f"{index:06d}.png"), cv2.IMREAD_GRAYSCALE) / 255.0).astype(np.float32)
