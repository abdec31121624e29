"""``wirewatch report``: one self-contained HTML page (and optionally a PDF) describing a run."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    record: Path = typer.Argument(..., help="Record file (JSON Lines), or the run's particle tables folder."),
    particles: Path | None = typer.Option(None, "--particles", "-p", help="The run's particle tables folder "
                                          "(wirewatch run --particles DIR): distributions, metadata, live "
                                          "change points and alerts."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
    pdf: Path | None = typer.Option(None, "--pdf", help="Also write the figures as a PDF here (matplotlib)."),
) -> None:
    """Report of a run: metadata, statistics over time with change points and alerts, and per segment the
    distributions of area, length, width, aspect ratio and orientation with medians and effect sizes.

    Example: wirewatch report run/record.jsonl --particles run/particles --out run/report.html
    """
    from wirewatch.report import build_report

    summary = build_report(record, out, particles=particles, pdf=pdf)
    typer.echo(f"wrote {summary.html} ({summary.frames} frames, {summary.changepoints} change point(s), "
               f"{'no' if summary.particles is None else summary.particles} particles; figures: "
               f"{', '.join(summary.figures)})" + (f" and {summary.pdf}" if summary.pdf else ""))
