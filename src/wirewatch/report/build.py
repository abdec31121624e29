"""Assemble the report: tables, figures, HTML (and PDF with matplotlib's PdfPages)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch import __version__
from wirewatch.files import write_atomically

from .data import DESCRIPTORS, RunData, load_run
from .figures import distribution_figure, shown_changepoints, statistics_over_time


@dataclass(frozen=True)
class ReportSummary:
    html: Path
    pdf: Path | None
    figures: tuple[str, ...]  # the data-figure names on the page
    frames: int
    changepoints: int
    particles: int | None


def cohens_d(before: np.ndarray, after: np.ndarray) -> float:
    """(mean after - mean before) / pooled standard deviation; NaN with fewer than 2 values on a side."""
    if before.size < 2 or after.size < 2:
        return math.nan
    pooled = math.sqrt(((before.size - 1) * before.var(ddof=1) + (after.size - 1) * after.var(ddof=1))
                       / (before.size + after.size - 2))
    return float((after.mean() - before.mean()) / pooled) if pooled > 0 else math.nan


def ks_distance(before: np.ndarray, after: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (0 = same distribution, 1 = disjoint)."""
    if before.size == 0 or after.size == 0:
        return math.nan
    from scipy.stats import ks_2samp

    return float(ks_2samp(before, after).statistic)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float | np.floating):
        return "-" if not math.isfinite(v) else f"{float(v):.{digits}g}"
    return html.escape(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>'


def _iso(t: Any) -> str:
    if t is None or not math.isfinite(float(t)):
        return "-"
    return dt.datetime.fromtimestamp(float(t), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def metadata_rows(run: RunData) -> list[tuple[str, Any]]:
    m = run.meta
    ids = run.frames
    missing = int(ids.max() - ids.min() + 1 - np.unique(ids).size) if ids.size else 0
    lat = run.latency_s[np.isfinite(run.latency_s)]
    not_logged = "not recorded (give the run's --particles folder)"
    dropped = m.get("frames_dropped")
    errors = m.get("frame_errors")
    rows: list[tuple[str, Any]] = [
        ("record", str(run.record)),
        ("model", m.get("model") or (not_logged if not m else "none (baseline segmenter)")),
        ("segmenter backend", m.get("backend", not_logged)),
        ("config sha256", m.get("config_sha256", not_logged)),
        ("run", f"{_iso(float(run.times[0]))} to {_iso(float(run.times[-1]))}"),
        ("frames in the record", f"{ids.size} (ids {int(ids.min())}-{int(ids.max())})"),
        ("frames processed", m.get("frames_processed", ids.size)),
        ("frames dropped", (", ".join(f"{k} {v}" for k, v in dropped.items()) or "0") if isinstance(dropped, dict)
         else f"{missing} frame id(s) missing from the record (dropped or failed)"),
        ("frame errors", (", ".join(f"{k} {v}" for k, v in errors.items()) or "0") if isinstance(errors, dict)
         else "-"),
        ("latency (receipt to publication)", f"p50 {np.percentile(lat, 50):.3f} s, p99 {np.percentile(lat, 99):.3f} s,"
         f" max {lat.max():.3f} s" if lat.size else "not recorded"),
        ("particles", f"{run.particles['frame'].size} from {run.particles_source}" if run.particles is not None
         else "no per-particle data (run with --particles DIR, or record.particles)"),
        ("change points", f"{len(run.changepoints)}, {run.changepoints_source}"),
        ("alerts", f"{sum(1 for a in run.alerts if a.get('state') == 'firing')} firing, "
         f"{sum(1 for a in run.alerts if a.get('state') == 'resolved')} resolved" if run.alerts
         else "none logged"),
    ]
    return rows


def segment_rows(run: RunData) -> list[list[Any]]:
    rows = []
    for i, (start, end) in enumerate(run.segments()):
        n = int(np.count_nonzero((run.frames >= start) & (run.frames < end)))
        row: list[Any] = [f"S{i + 1}", f"{start}-{end - 1}", n,
                          run.values(DESCRIPTORS[0], start, end).size if run.particles is not None else None]
        row += [float(np.median(v)) if (v := run.values(d, start, end)).size else math.nan for d in DESCRIPTORS]
        rows.append(row)
    return rows


def effect_rows(run: RunData) -> list[list[Any]]:
    segments = run.segments()
    index = {start: i for i, (start, _) in enumerate(segments)}
    rows = []
    for f in run.boundaries:
        i = index[f]
        (b0, b1), (a0, a1) = segments[i - 1], segments[i]
        cp = next((c for c in run.changepoints if int(c["frame"]) == f), {})
        for d in DESCRIPTORS:
            before, after = run.values(d, b0, b1), run.values(d, a0, a1)
            if before.size == 0 and after.size == 0:
                continue
            rows.append([f, f"S{i} -> S{i + 1}", ", ".join(cp.get("statistics", [])), d,
                         float(np.median(before)) if before.size else math.nan,
                         float(np.median(after)) if after.size else math.nan,
                         cohens_d(before, after), ks_distance(before, after)])
    return rows


def alert_rows(run: RunData) -> list[list[Any]]:
    return [[a.get("frame"), a.get("name"), a.get("state"), a.get("labels", {}).get("severity", "-"),
             a.get("annotations", {}).get("summary", "")] for a in run.alerts]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.6em}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}td,th{border:1px solid #ddd;
padding:.25em .6em;text-align:left}th{background:#f3f3f3}table.meta td:first-child{font-weight:600}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.note{color:#666;font-size:.85em}"""


def render_html(run: RunData, figures: list[tuple[str, Any, str]]) -> str:
    title = f"wirewatch run report: {run.record.name}"
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f'<p class="note">wirewatch {html.escape(__version__)}, written '
             f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}. Self-contained: figures are embedded.</p>",
             "<h2>Run</h2>", _table(["", ""], metadata_rows(run), "meta")]

    def figure(name: str) -> str:
        for fname, fig, caption in figures:
            if fname == name:
                return (f'<figure data-figure="{html.escape(fname)}"><img alt="{html.escape(fname)}" '
                        f'src="data:image/png;base64,{_png(fig)}"><figcaption>{html.escape(caption)}'
                        "</figcaption></figure>")
        return ""

    parts += ["<h2>Statistics over time</h2>", figure("statistics over time")]
    if run.changepoints:
        parts.append(_table(["frame", "detected at", "statistics", "effect size", "detector", "severity"],
                            [[c.get("frame"), c.get("detected_at"), ", ".join(c.get("statistics", [])),
                              c.get("effect_size"), c.get("detector"), c.get("severity")]
                             for c in run.changepoints]))
    if run.alerts:
        parts += ["<h3>Alerts</h3>", _table(["frame", "alert", "state", "severity", "summary"], alert_rows(run))]
    parts.append("<h2>Segments between change points</h2>")
    parts.append(_table(["segment", "frames", "n frames", "n particles", *[f"median {d}" for d in DESCRIPTORS]],
                        segment_rows(run)))
    if run.particles is None:
        parts.append('<p class="note">No per-particle data: distributions need the particle tables '
                     "(<code>wirewatch run --particles DIR</code>, then <code>wirewatch report RECORD "
                     "--particles DIR</code>).</p>")
    else:
        effects = effect_rows(run)
        if effects:
            parts += ["<h3>Effect sizes at each change point</h3>",
                      '<p class="note">Cohen\'s d = (mean after - mean before) / pooled SD; KS = two-sample '
                      "Kolmogorov-Smirnov distance (0 same, 1 disjoint). Orientation: d is linear on [0, 180), "
                      "KS is the better guide.</p>",
                      _table(["change point", "segments", "statistics", "descriptor", "median before",
                              "median after", "Cohen's d", "KS"], effects)]
        parts.append("<h2>Distributions</h2>")
        parts += [figure(d) for d in DESCRIPTORS]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def build_report(record: str | Path, out: str | Path, *, particles: str | Path | None = None,
                 pdf: str | Path | None = None) -> ReportSummary:
    """Write the HTML report of ``record`` (and ``particles``) to ``out``; a PDF too when ``pdf`` is given."""
    run = load_run(record, particles)
    n_shown = len(shown_changepoints(run))
    figures: list[tuple[str, Any, str]] = [
        ("statistics over time", statistics_over_time(run),
         f"Per-frame statistics; red dashed: change points ({run.changepoints_source}); orange dotted: alerts "
         "firing; S1, S2, ...: segments between change points.")]
    if run.particles is not None:
        for d in DESCRIPTORS:
            figures.append((d, distribution_figure(run, d),
                            f"{d}: density histogram and Gaussian KDE of the particles of the segment before "
                            f"(blue) and after (orange) each change point ({n_shown} shown)." if n_shown else
                            f"{d}: density histogram and Gaussian KDE over the whole run (no change point)."))
    page = render_html(run, figures)
    out = Path(out)
    write_atomically(out, lambda fh: fh.write(page.encode()))
    pdf_path = None
    if pdf is not None:
        pdf_path = write_pdf(run, figures, Path(pdf))
    return ReportSummary(html=out, pdf=pdf_path, figures=tuple(f[0] for f in figures), frames=int(run.frames.size),
                         changepoints=len(run.changepoints),
                         particles=None if run.particles is None else int(run.particles["frame"].size))


def write_pdf(run: RunData, figures: list[tuple[str, Any, str]], path: Path) -> Path:
    """The same figures as PDF pages (matplotlib's PdfPages), after a page of metadata and segment medians."""
    from matplotlib.backends.backend_pdf import PdfPages

    from wirewatch.plots.figure import new_figure

    first = new_figure(8.27, 11.69)
    lines = [f"wirewatch run report: {run.record.name}", ""]
    lines += [f"{k}: {v}" for k, v in metadata_rows(run)]
    lines += ["", "segment  frames  n frames  n particles  " + "  ".join(f"med {d}" for d in DESCRIPTORS)]
    lines += ["  ".join(_fmt(c) for c in row) for row in segment_rows(run)]
    first.text(0.05, 0.97, "\n".join(lines), va="top", ha="left", fontsize=7, family="monospace", wrap=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(path) as pages:
        pages.savefig(first)
        for _, fig, _ in figures:
            pages.savefig(fig, bbox_inches="tight")
    return path
