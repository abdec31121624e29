"""The one-command demo: simulator + daemon on loopback, live progress, plots at the end.

``run_demo(out_dir, ...)`` starts ``wirewatch.simulate.Simulator`` (binds a free loopback port)
and a ``Daemon`` built from the shipped config (input pointed at the simulator, record in
``out_dir``), shows frames/s, drops, particle count, the latest statistics and every change
point as it is detected, and writes ``record.jsonl``, ``truth.json`` (the scenario's change
points and, per frame, what the simulator drew: ``wirewatch.simulate.truth``), ``stats.png``
(statistics over time beside the simulator's truth, true change points as grey bands, detected
ones as red dashed lines), ``overlay.png`` (the last frame with its masks; these two need the ``plots``
extra), ``particles/`` (the Parquet particle tables, with the ``particles`` extra) and ``report.html``
(``wirewatch.report``: metadata, statistics, distributions per segment). It ends with the
agreement of the measured series with the truth and the number of NODATA pixels received (the
simulated scenes have none, so any is a fault on the way).

It sits beside ``wirewatch.simulate`` rather than inside it or the daemon: it composes the two, and
neither the simulator nor any other runtime package may import the daemon (issue 41's import rules).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.config.daemon import DaemonConfig, load_daemon_config, shipped_config_path
from wirewatch.daemon.service import Daemon
from wirewatch.extension import FrameResult, Observer
from wirewatch.report.demo import demo_record_options, demo_report
from wirewatch.simulate.producer import Simulator, SimulatorResult
from wirewatch.simulate.scenario import resolve_scenario
from wirewatch.simulate.truth import TRUTH_STATISTICS, agreement, truth_document
from wirewatch.types import ChangePoint

log = logging.getLogger(__name__)

# reliability (wirewatch.quality): how far to trust the others, 0-1; SegmentationUnreliable below 0.45
PLOTTED = ("particle_count", "length_px_mean", "width_px_mean", "orientation_order", "coverage_fraction",
           "reliability")
SHOWN = ("particle_count", "length_px_mean", "width_px_mean", "aspect_ratio_mean", "orientation_order",
         "coverage_fraction", "reliability")


@dataclass
class DemoState:
    """What the live view and the final plots need (filled from the publish thread)."""

    frames: list[int] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in PLOTTED})
    latest: Mapping[str, float] = field(default_factory=dict)
    latency_s: list[float] = field(default_factory=list)
    changepoints: list[ChangePoint] = field(default_factory=list)
    last: FrameResult | None = None
    nodata_px: int = 0  # pixels the decoder marked NODATA (Frame.valid False), all frames together
    nodata_frames: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_result(self, result: FrameResult) -> None:
        valid = result.frame.valid
        nodata = 0 if valid is None else int(valid.size - np.count_nonzero(valid))
        with self.lock:
            self.nodata_px += nodata
            self.nodata_frames += nodata > 0
            self.frames.append(result.frame_id)
            for k in PLOTTED:
                v = result.stats.aggregates.get(k)
                self.series[k].append(math.nan if v is None else float(v))
            self.latest = dict(result.stats.aggregates)
            self.latency_s.append(result.latency_s)
            self.last = result

    def on_changepoint(self, cp: ChangePoint) -> None:
        with self.lock:
            self.changepoints.append(cp)


@dataclass(frozen=True)
class DemoSummary:
    out: Path
    frames_sent: int
    frames_processed: int
    frames_dropped: int
    frame_errors: int
    seconds: float
    true_change_points: tuple[int, ...]
    detected: tuple[ChangePoint, ...]
    backend: str
    files: tuple[Path, ...]
    interrupted: bool
    agreement: Mapping[str, float] = field(default_factory=dict)  # wirewatch.simulate.truth.agreement
    nodata_pixels: int = 0


def demo_config(endpoint: str, record: Path, *, format: str, policy: str, backend: str | None,
                config_path: Path | None) -> DaemonConfig:
    """The shipped config, pointed at the simulator, with nothing bound to a fixed port."""
    overrides: dict[str, Any] = {
        "ingest": {"source": "zmq", "endpoint": endpoint, "socket": "pull", "bind": False, "format": format,
                   "policy": policy},
        "record": {"path": str(record), **demo_record_options(record.parent)},  # + particle tables
        "http": {"port": 0},
        "alerts": {"sinks": []},
        "publish": {"zmq": {"bind": "tcp://127.0.0.1:*"}},
    }
    if backend is not None:
        overrides["segment"] = {"backend": backend}
    path = config_path
    if path is None and shipped_config_path().is_file():
        path = shipped_config_path()
    return load_daemon_config(path, overrides=overrides)


def run_demo(out: Path, *, frames: int = 300, rate: float = 4.0, scenario: str = "demo",
             format: str = "stream2", policy: str = "latest", backend: str | None = None,
             config_path: Path | None = None, live: bool = True, console: Any = None) -> DemoSummary:
    from rich.console import Console

    console = console or Console()
    sc = resolve_scenario(scenario)
    out.mkdir(parents=True, exist_ok=True)
    truth = sc.truth(frames)
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    record = out / "record.jsonl"
    if record.exists():
        record.unlink()  # a fresh record per demo run
    sim = Simulator(sc, endpoint="tcp://127.0.0.1:*", format=format, rate=rate, frames=frames)
    endpoint = sim.open()
    state = DemoState()
    try:
        cfg = demo_config(endpoint, record, format=format, policy=policy, backend=backend, config_path=config_path)
        daemon = Daemon(cfg, extensions=[Observer(on_result=state.on_result, on_changepoint=state.on_changepoint)])
    except BaseException:
        sim.close()
        raise
    sim_result: list[SimulatorResult] = []
    sim_thread = threading.Thread(target=lambda: sim_result.append(sim.run()), name="wirewatch-demo-sim",
                                  daemon=True)
    console.print(f"[bold]wirewatch demo[/]: scenario [cyan]{sc.name}[/] ({sc.description}); {frames} frames of "
                  f"{sc.size} x {sc.size} at {rate:g} frames/s as {format}; segmenter "
                  f"[cyan]{daemon.built.backend}[/]; output {out}")
    console.print(f"true change points at frames {truth['change_points']}")
    t0 = time.monotonic()
    interrupted = False
    daemon.start()
    if daemon.http is not None:
        page = "live web view" if daemon.config.http.web.enabled else "metrics"
        console.print(f"{page}: {daemon.http.url}/{'' if daemon.config.http.web.enabled else 'metrics'}")
    sim_thread.start()
    try:
        _watch(daemon, sim, sim_thread, state, console, t0, live, frames)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: stopping the simulator and draining the daemon[/]")
    finally:
        sim.stop()
        try:
            sim_thread.join(timeout=10)
            sent_messages = sim_result[0].messages_sent if sim_result else None
            if not interrupted and sent_messages is not None:
                _wait_received(daemon, sent_messages, timeout=10)
            daemon.stop()
            daemon.wait()
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for frames in flight
            interrupted = True
            daemon.pipeline.abort()
            daemon.close()
        sim.close()
    seconds = time.monotonic() - t0
    reg = daemon.registry
    dropped = int(sum(reg.get_sample_value("wirewatch_frames_dropped_total", {"reason": r}) or 0
                      for r in ("overflow", "superseded", "replay", "shutdown")))
    errors = int(sum(s.value for m in reg.collect() if m.name == "wirewatch_frame_errors" for s in m.samples
                     if s.name.endswith("_total")))
    frame_truth = sim.sent_truth()
    (out / "truth.json").write_text(json.dumps(truth_document(sc, frames, frame_truth), indent=1) + "\n")
    with state.lock:
        measured = {i: {k: state.series[k][j] for k in PLOTTED} for j, i in enumerate(state.frames)}
    agreed = agreement(measured, frame_truth)
    files = [record, out / "truth.json", *_plots(out, state, truth["change_points"], sc.name, frame_truth)]
    files += demo_report(out)  # report.html: metadata, statistics, distributions per segment
    summary = DemoSummary(out=out, frames_sent=sim.sent_frames, frames_processed=daemon.pipeline.processed,
                          frames_dropped=dropped, frame_errors=errors, seconds=seconds,
                          true_change_points=tuple(truth["change_points"]), detected=tuple(state.changepoints),
                          backend=daemon.built.backend, files=tuple(files), interrupted=interrupted,
                          agreement=agreed, nodata_pixels=state.nodata_px)
    _print_summary(console, summary, state)
    return summary


def _wait_received(daemon: Daemon, messages: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    source = daemon.pipeline.source
    while source.stats().received < messages and time.monotonic() < deadline:
        time.sleep(0.05)


def _watch(daemon: Daemon, sim: Simulator, sim_thread: threading.Thread, state: DemoState, console: Any,
           t0: float, live: bool, frames: int) -> None:
    from rich.live import Live

    shown_cps = 0

    def render() -> Any:
        return _progress_table(daemon, sim, state, time.monotonic() - t0, frames)

    with Live(render(), console=console, refresh_per_second=4, transient=False, auto_refresh=live) as view:
        while sim_thread.is_alive() and daemon.pipeline.running:
            time.sleep(0.25)
            with state.lock:
                new = state.changepoints[shown_cps:]
            for cp in new:
                view.console.print(f"[bold red]change point[/] at frame {cp.frame} in {', '.join(cp.statistics)} "
                                   f"({cp.detector}, detected at frame {cp.detected_at}, effect "
                                   f"{cp.effect_size:.1f}, {cp.severity})")
            shown_cps += len(new)
            view.update(render())
        view.update(render())
    if not console.is_terminal:
        console.line()  # Live leaves its last render without a newline when the output is not a terminal


def _progress_table(daemon: Daemon, sim: Simulator, state: DemoState, elapsed: float, frames: int) -> Any:
    from rich.table import Table

    reg = daemon.registry
    with state.lock:
        processed = len(state.frames)
        latest = dict(state.latest)
        last_frame = state.frames[-1] if state.frames else None
        recent = state.latency_s[-20:]
        n_cps = len(state.changepoints)
    dropped = sum(reg.get_sample_value("wirewatch_frames_dropped_total", {"reason": r}) or 0
                  for r in ("overflow", "superseded"))
    table = Table(title=f"wirewatch demo  {elapsed:5.1f} s", show_header=False, min_width=60)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("frames sent (of the run)", f"{sim.sent_frames} of {frames}")
    table.add_row("frames processed", f"{processed}")
    table.add_row("frames/s processed", f"{processed / elapsed:.2f}" if elapsed > 0 else "-")
    table.add_row("dropped (overload)", f"{int(dropped)}")
    table.add_row("latency p50 (last 20)", f"{np.median(recent):.3f} s" if recent else "-")
    table.add_row("latest frame", str(last_frame) if last_frame is not None else "-")
    for k in SHOWN:
        v = latest.get(k)
        table.add_row(f"  {k}", "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}")
    table.add_row("change points detected", str(n_cps))
    return table


def _plots(out: Path, state: DemoState, truth: list[int], name: str,
           frame_truth: Mapping[int, Mapping[str, float]]) -> list[Path]:
    from wirewatch.plots.overlay import plot_overlay
    from wirewatch.plots.series import plot_series

    written: list[Path] = []
    with state.lock:
        frames = list(state.frames)
        series = {k: list(v) for k, v in state.series.items()}
        cps = list(state.changepoints)
        last = state.last
    drawn = sorted(frame_truth)
    reference = {k: (drawn, [frame_truth[i][k] for i in drawn]) for k in PLOTTED if k in TRUTH_STATISTICS}
    if frames:
        written.append(plot_series(frames, series, out / "stats.png", change_points=cps, truth=truth,
                                   reference=reference if drawn else None,
                                   title=f"scenario {name}: measured blue, simulator's truth black; true change "
                                         "points grey, detected red"))
    if last is not None:
        written.append(plot_overlay(last.image, last.detections.masks, out / "overlay.png", ids=False,
                                    title=f"frame {last.frame_id}: {len(last.detections)} particles"))
    return written


def _print_summary(console: Any, s: DemoSummary, state: DemoState) -> None:
    fps = s.frames_processed / s.seconds if s.seconds > 0 else 0.0
    lat = np.percentile(state.latency_s, [50, 99]) if state.latency_s else [math.nan, math.nan]
    console.print(f"[bold]done[/]: {s.frames_sent} frames sent, {s.frames_processed} processed "
                  f"({fps:.2f}/s), {s.frames_dropped} dropped, {s.frame_errors} bad; latency p50 "
                  f"{lat[0]:.3f} s, p99 {lat[1]:.3f} s; segmenter {s.backend}")
    detected = [cp.frame for cp in s.detected]
    console.print(f"change points: true {list(s.true_change_points)}, detected {detected}")
    a = s.agreement
    if a.get("frames"):
        console.print(f"agreement with the simulator's truth over {a['frames']:.0f} frames: particle count off by "
                      f"{100 * a['count_rel_error_mean']:.1f} % on average (bias {100 * a['count_bias']:+.1f} %; "
                      f"goal <= 10 %), width_px_mean by {a['width_error_px_mean']:.2f} px (bias "
                      f"{a['width_bias_px']:+.2f} px; goal <= 1 px), length_px_mean by "
                      f"{a['length_error_px_mean']:.2f} px (bias {a['length_bias_px']:+.2f} px)")
    console.print(f"NODATA pixels received: {s.nodata_pixels} in {state.nodata_frames} frames (the simulated "
                  "scenes have none)")
    for path in s.files:
        console.print(f"  wrote {path}")
