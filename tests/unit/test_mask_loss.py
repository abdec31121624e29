"""The BCE + Dice mask loss: its arithmetic, that it is torchvision's loss at weight 0, and that the
trainer's loss_mask carries exactly the Dice term it names."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs the `train` extra (torch, torchvision)")

from torchvision.models.detection import roi_heads  # noqa: E402

from wirewatch.train.config import TrainConfig  # noqa: E402
from wirewatch.train.loop import Trainer  # noqa: E402
from wirewatch.train.mask_loss import bce_dice_loss, dice_mask_loss, soft_dice_loss  # noqa: E402
from wirewatch.train.toy import write_toy_dataset  # noqa: E402


def test_soft_dice_is_zero_on_a_perfect_mask_and_near_one_on_a_disjoint_one() -> None:
    target = torch.zeros(2, 28, 28)
    target[:, 10:18, 2:26] = 1  # a horizontal wire, 8 x 24 cells
    assert float(soft_dice_loss(target, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(soft_dice_loss(target.flip(1).roll(12, 1), target)) == pytest.approx(1 - 1 / 385, rel=1e-6)
    # one row of edge cells missed: Dice 2 * 168 / (168 + 192) with smoothing 1
    thinner = target.clone()
    thinner[:, 17] = 0
    assert float(soft_dice_loss(thinner, target)) == pytest.approx(1 - 337 / 361, rel=1e-6)


def random_mask_inputs(seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 2, 28, 28, generator=g)
    gt_masks = [torch.rand(3, 64, 64, generator=g).round(), torch.rand(2, 64, 64, generator=g).round()]
    proposals = [torch.tensor([[0, 0, 30, 30], [10, 5, 60, 40], [2, 2, 63, 63]], dtype=torch.float32),
                 torch.tensor([[4, 4, 20, 50], [30, 30, 60, 60]], dtype=torch.float32)]
    labels = [torch.tensor([1, 1, 1]), torch.tensor([1, 1])]
    matched = [torch.tensor([0, 2, 1]), torch.tensor([1, 0])]
    return logits, proposals, gt_masks, labels, matched


def test_weight_zero_is_torchvisions_loss_and_the_dice_term_adds_linearly() -> None:
    args = random_mask_inputs()
    bce = roi_heads.maskrcnn_loss(*args)
    assert float(bce_dice_loss(*args, dice_weight=0.0)) == pytest.approx(float(bce), rel=1e-6)
    one, two = float(bce_dice_loss(*args, dice_weight=1.0)), float(bce_dice_loss(*args, dice_weight=2.0))
    assert 0 < one - float(bce) < 1
    assert two - float(bce) == pytest.approx(2 * (one - float(bce)), rel=1e-5)


def test_the_swap_lasts_one_block_and_is_undone_on_error() -> None:
    original = roi_heads.maskrcnn_loss
    args = random_mask_inputs(1)
    with dice_mask_loss(0.0):
        assert roi_heads.maskrcnn_loss is original
    with dice_mask_loss(0.5):
        assert float(roi_heads.maskrcnn_loss(*args)) == pytest.approx(float(bce_dice_loss(*args, dice_weight=0.5)))
    assert roi_heads.maskrcnn_loss is original
    with pytest.raises(RuntimeError, match="boom"), dice_mask_loss(1.0):
        raise RuntimeError("boom")
    assert roi_heads.maskrcnn_loss is original


def test_trainer_loss_mask_carries_exactly_the_weighted_dice(tmp_path: Path) -> None:
    """Same seed, same batch, same sampled RoIs: only loss_mask moves, by w x Dice, linearly in w."""
    toy = write_toy_dataset(tmp_path / "toy", n_train=4, n_val=1, size=96, seed=5)

    def first_step(weight: float) -> dict[str, float]:
        cfg = TrainConfig.model_validate(dict(
            data=str(toy), out=str(tmp_path / f"run{weight}"), steps=2, batch_size=2, crop_size=64,
            warmup_steps=1, val_images=0, precise_bn_batches=0, mask_dice_weight=weight))
        return Trainer(cfg, show_progress=False).train_step()

    plain, dice1, dice2 = first_step(0.0), first_step(1.0), first_step(2.0)
    for term in ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"):
        assert dice1[term] == pytest.approx(plain[term], rel=1e-5) == dice2[term]
    dice = dice1["loss_mask"] - plain["loss_mask"]
    assert 0.05 < dice < 1  # an untrained head's masks overlap their targets poorly
    assert dice2["loss_mask"] - plain["loss_mask"] == pytest.approx(2 * dice, rel=1e-4)
    assert roi_heads.maskrcnn_loss.__module__ == "torchvision.models.detection.roi_heads"
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        TrainConfig.model_validate(dict(data=str(toy), out=str(tmp_path / "x"), mask_dice_weight=-1))
