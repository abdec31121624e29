"""``wirewatch.train.blend``: WiSE-FT interpolation of a parent and its fine-tuned checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs the `train` extra (torch, torchvision)")

from wirewatch.errors import InputError  # noqa: E402
from wirewatch.train.blend import blend_runs, blend_state  # noqa: E402
from wirewatch.train.config import TrainConfig  # noqa: E402
from wirewatch.train.loop import Trainer, read_checkpoint  # noqa: E402
from wirewatch.train.toy import write_toy_dataset  # noqa: E402


def test_blend_state_interpolates_floats_and_keeps_counters() -> None:
    base = {"w": torch.zeros(3), "bn.num_batches_tracked": torch.tensor(5)}
    tuned = {"w": torch.tensor([1.0, 2.0, 4.0]), "bn.num_batches_tracked": torch.tensor(9)}
    out = blend_state(base, tuned, 0.25)
    assert torch.allclose(out["w"], torch.tensor([0.25, 0.5, 1.0]))
    assert out["bn.num_batches_tracked"].item() == 9 and out["bn.num_batches_tracked"].dtype == torch.int64
    assert torch.equal(blend_state(base, tuned, 0.0)["w"], base["w"])
    with pytest.raises(InputError, match=r"alpha must be in \[0, 1\]"):
        blend_state(base, tuned, 1.5)
    with pytest.raises(InputError, match="different tensors"):
        blend_state({"w": torch.zeros(3)}, {"v": torch.zeros(3)}, 0.5)
    with pytest.raises(InputError, match=r"shape \(3,\) in base, \(2,\) in tuned"):
        blend_state({"w": torch.zeros(3)}, {"w": torch.zeros(2)}, 0.5)


def _run(data: Path, out: Path, seed: int) -> Path:
    cfg = TrainConfig.model_validate(dict(data=str(data), out=str(out), steps=2, batch_size=1, crop_size=64,
                                          warmup_steps=1, val_images=0, precise_bn_batches=2, seed=seed))
    return Trainer(cfg, show_progress=False).run().final_checkpoint or out / "final.pt"


def test_blend_run_writes_a_checkpoint_between_its_parents(tmp_path: Path) -> None:
    data = write_toy_dataset(tmp_path / "toy", n_train=4, n_val=1, size=96, seed=3)
    base, tuned = _run(data, tmp_path / "a", 1), _run(data, tmp_path / "b", 2)
    final = blend_runs(base, tuned, 0.5, tmp_path / "blend")
    state, a, b = read_checkpoint(final), read_checkpoint(base)["model"], read_checkpoint(tuned)["model"]
    conv = next(k for k, v in a.items() if k.endswith("weight") and v.ndim == 4 and not torch.equal(v, b[k]))
    assert torch.allclose(state["model"][conv], (a[conv] + b[conv]) / 2, atol=1e-6)
    bn = next(k for k in a if k.endswith("running_mean") and not torch.equal(a[k], b[k]))
    # BatchNorm statistics re-estimated on the data, not averaged
    assert not torch.allclose(state["model"][bn], (a[bn] + b[bn]) / 2)
    assert state["blend"]["alpha"] == 0.5 and "optimizer" not in state
    assert state["step"] == read_checkpoint(tuned)["step"] and state["variant"] == "compact"
    assert json.loads((tmp_path / "blend" / "blend.json").read_text())["tuned"] == str(tuned)
    assert (tmp_path / "blend" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
