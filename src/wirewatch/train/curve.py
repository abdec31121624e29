"""The learning-curve figure: training loss and validation AP against step."""

from __future__ import annotations

import csv
from pathlib import Path


def plot_curve(metrics_csv: str | Path, out_png: str | Path) -> Path:
    from wirewatch.extras import require

    require("matplotlib", "the learning curve").use("Agg")
    import matplotlib.pyplot as plt

    with Path(metrics_csv).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    steps = [int(r["step"]) for r in rows if r["loss"]]
    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(11, 4))
    for key, style in (("loss", "k-"), ("loss_mask", "C1-"), ("loss_classifier", "C0-"), ("loss_box_reg", "C2-")):
        vals = [float(r[key]) for r in rows if r["loss"]]
        ax_loss.plot(steps, vals, style, lw=1, label=key)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss (mean over log window)")
    ax_loss.legend(fontsize=8)
    val = [r for r in rows if r.get("segm.AP")]
    for key, style in (("bbox.AP", "C0o-"), ("bbox.AP50", "C0s--"), ("segm.AP", "C1o-"), ("segm.AP50", "C1s--")):
        ax_ap.plot([int(r["step"]) for r in val], [float(r[key]) for r in val], style, label=key)
    ax_ap.set_ylim(0, 1)
    ax_ap.set_xlabel("step")
    ax_ap.set_ylabel("validation AP (pycocotools)")
    ax_ap.grid(alpha=0.3)
    ax_ap.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
