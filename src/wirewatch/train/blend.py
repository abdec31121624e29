"""Weight interpolation between a model and its fine-tuned descendant (WiSE-FT).

A leg fine-tuned on new data (e.g. the realistic preset's wires) gains there and loses a little on the
data its parent was best at. Wortsman et al., "Robust fine-tuning of zero-shot models" (CVPR 2022), found
that the straight line between the parent's and the fine-tuned weights keeps much of both: here
``(1 - alpha) * base + alpha * tuned`` for every floating-point tensor, then BatchNorm statistics
re-estimated (``wirewatch.train.batchnorm``) on the tuned run's own training mix, because the averaged
running statistics belong to neither network.

    python -m wirewatch.train.blend --base PARENT.pt --tuned RUN/final.pt --alpha 0.5 --out BLEND_DIR

``BLEND_DIR`` then holds ``final.pt`` (exportable like any run's), the tuned run's records and ``blend.json``.
Both checkpoints must be of the same variant; the tuned run's config (data, mix, seed) is reused.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wirewatch.errors import InputError
from wirewatch.train.config import TrainConfig
from wirewatch.train.loop import Trainer, read_checkpoint


def blend_state(base: dict[str, Tensor], tuned: dict[str, Tensor], alpha: float) -> dict[str, Tensor]:
    """``(1 - alpha) * base + alpha * tuned`` for floating-point tensors; others (counters) from ``tuned``."""
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be in [0, 1], got {alpha}")
    if base.keys() != tuned.keys():
        missing = sorted(set(base) ^ set(tuned))[:5]
        raise InputError(f"the two checkpoints hold different tensors (e.g. {missing}): not the same variant")
    out: dict[str, Tensor] = {}
    for name, t in tuned.items():
        b = base[name]
        if b.shape != t.shape:
            raise InputError(f"tensor {name} has shape {tuple(b.shape)} in base, {tuple(t.shape)} in tuned")
        out[name] = torch.lerp(b.float(), t.float(), alpha).to(t.dtype) if t.is_floating_point() else t.clone()
    return out


def blend_runs(base: Path, tuned: Path, alpha: float, out: Path) -> Path:
    """Write ``out/final.pt``: the blend of two checkpoints with BatchNorm re-estimated; returns its path."""
    b_state, t_state = read_checkpoint(base), read_checkpoint(tuned)
    if b_state.get("variant") != t_state.get("variant"):
        raise InputError(f"base is {b_state.get('variant')!r}, tuned is {t_state.get('variant')!r}: "
                         "blending needs one variant")
    cfg = TrainConfig.model_validate({**t_state["config"], "out": str(out), "init": None})
    trainer = Trainer(cfg, show_progress=False)
    trainer.model.load_state_dict(blend_state(b_state["model"], t_state["model"], alpha))
    trainer.precise_bn()  # on the tuned run's mix, seeded by its seed
    trainer.step, trainer.elapsed_s = int(t_state["step"]), float(t_state.get("elapsed_s", 0.0))
    state: dict[str, Any] = trainer.checkpoint_state()
    state.pop("optimizer")
    info = {"base": str(base), "tuned": str(tuned), "alpha": alpha, "bn_batches": cfg.precise_bn_batches}
    state["blend"] = info
    final = out / "final.pt"
    torch.save(state, final)
    run = tuned.parent
    for name in ("metrics.csv", "curve.png"):
        if (run / name).is_file():
            shutil.copyfile(run / name, out / name)
    if (run / "train.log").is_file():  # the tuned run's log, then the blend's own lines
        own = (out / "train.log").read_text() if (out / "train.log").is_file() else ""
        (out / "train.log").write_text((run / "train.log").read_text() + own)
    (out / "blend.json").write_text(json.dumps(info, indent=1) + "\n")
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="parent checkpoint (alpha 0)")
    parser.add_argument("--tuned", type=Path, required=True, help="fine-tuned checkpoint (alpha 1)")
    parser.add_argument("--alpha", type=float, required=True, help="share of the tuned weights")
    parser.add_argument("--out", type=Path, required=True, help="folder for final.pt and records")
    args = parser.parse_args(argv)
    print(blend_runs(args.base, args.tuned, args.alpha, args.out))


if __name__ == "__main__":
    main()
