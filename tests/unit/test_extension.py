"""Extensions (``wirewatch.extension``) attached by the real builder and daemon: an in-memory source from an
extension, real decoder, watershed segmenter, measurer, change detector wrapper, alert rules and sinks."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from wirewatch.config.daemon import DaemonConfig
from wirewatch.daemon.build import build_pipeline
from wirewatch.daemon.service import Daemon
from wirewatch.extension import (
    BaseExtension,
    ChangeDetector,
    FrameResult,
    Hooks,
    SourceCounters,
)
from wirewatch.ingest import encode_array10
from wirewatch.ingest.base import Source
from wirewatch.ingest.memory import MessageListSource
from wirewatch.types import Alert, ChangePoint, SeriesEnd, SeriesStart


def rods(i: int) -> np.ndarray:
    """One wire on even frames, two on odd ones."""
    img = np.zeros((64, 64), np.uint8)
    img[5:10, 5:50] = 200
    if i % 2:
        img[20:60, 40:45] = 200
    return img


def config(**sections: object) -> DaemonConfig:
    return DaemonConfig.model_validate({
        "ingest": {"policy": "queue"}, "segment": {"backend": "watershed"}, "changepoint": {"enabled": True},
        "alerts": {"sinks": [], "rules": [
            {"kind": "threshold", "name": "TwoWires", "statistic": "particle_count", "max": 1.5}]},
        "publish": {"zmq": None},
        "http": {"enabled": False}, "pipeline": {"shutdown_timeout_s": 20}, **sections})


class AlertList:
    """An ``AlertSink`` that keeps (name, state) of what it is sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[str, str]] = []
        self.closed = False

    def send(self, alert: Alert) -> None:
        self.sent.append((alert.name, alert.state))

    def close(self, timeout: float = 5.0) -> None:
        self.closed = True


class ResultList:
    """A ``ResultSink``."""

    name = "results"

    def __init__(self) -> None:
        self.frames: list[int] = []
        self.events: list[object] = []
        self.closed = False

    def publish(self, result: FrameResult) -> list[Alert]:
        self.frames.append(result.frame_id)
        return []

    def series(self, event: SeriesStart | SeriesEnd) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


class CountingDetector:
    """Wraps the real detector, counting updates and resets (and in which thread they happen)."""

    def __init__(self, inner: ChangeDetector) -> None:
        self.inner = inner
        self.updates = 0
        self.resets: list[str] = []

    def update(self, frame_id: int, stats: Mapping[str, float]) -> list[ChangePoint]:
        self.updates += 1
        return self.inner.update(frame_id, stats)

    def reset(self) -> None:
        self.resets.append(threading.current_thread().name)
        self.inner.reset()


class Everything(BaseExtension):
    """Uses every hook: a source, listeners, a result sink, two alert sinks, a detector wrapper, controls."""

    name = "everything"

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.calls: list[str] = []
        self.results: list[FrameResult] = []
        self.sink = ResultList()
        self.pausable, self.always = AlertList("pausable"), AlertList("always")
        self.detector: CountingDetector | None = None
        self.hooks: Hooks | None = None

    def source(self, config: DaemonConfig, counters: SourceCounters) -> Source:
        self.calls.append("source")
        return MessageListSource([encode_array10(i, rods(i)) for i in range(1, self.frames + 1)])

    def attach(self, hooks: Hooks) -> None:
        self.calls.append("attach")
        self.hooks = hooks
        hooks.on_result(self.results.append)
        hooks.add_result_sink(self.sink)
        assert hooks.add_alert_sink(self.pausable)
        assert hooks.add_alert_sink(self.always, pausable=False)

        def wrap(inner: ChangeDetector) -> ChangeDetector:
            self.detector = CountingDetector(inner)
            return self.detector

        assert hooks.wrap_detector(wrap)

    def start(self) -> None:
        self.calls.append("start")

    def close(self) -> None:
        self.calls.append("close")


def test_an_extension_supplies_the_source_observes_adds_sinks_and_uses_the_controls() -> None:
    ext = Everything(frames=6)
    built = build_pipeline(config(), extensions=[ext])
    hooks = ext.hooks
    assert hooks is not None and built.hooks is hooks and built.extensions == [ext]
    assert ext.calls == ["source", "attach"] and hooks.backend == "watershed" and not hooks.started
    assert built.pipeline.detector is ext.detector
    hooks.pause_alerts(True)  # from this (another) thread, before any frame
    assert hooks.alerts_paused
    hooks.reset_changepoints()
    built.pipeline.start()
    assert built.pipeline.join(30)
    assert [r.frame_id for r in ext.results] == [1, 2, 3, 4, 5, 6]
    assert ext.sink.frames == [1, 2, 3, 4, 5, 6] and ext.sink.closed
    # frames 1, 3, 5 have two wires (TwoWires fires), 2, 4, 6 one (resolves): only the unpausable sink hears it
    assert ext.always.sent == [("TwoWires", s) for s in ("firing", "resolved") * 3]
    assert ext.pausable.sent == []
    assert [a.state for r in ext.results for a in r.alerts] == ["firing", "resolved"] * 3
    assert ext.detector is not None and ext.detector.updates == 6
    assert ext.detector.resets == ["wirewatch-measure"]  # the requested reset ran in the measure thread
    c = hooks.counters()
    assert (c.received, c.processed, c.dropped, c.errors) == (6, 6, 0, 0)
    assert c.as_dict() == {"received": 6.0, "processed": 6.0, "dropped": 0.0, "errors": 0.0}
    with pytest.raises(RuntimeError, match="before the daemon starts"):
        hooks.on_result(ext.results.append)  # the pipeline's threads read the lists without a lock
    built.close_extensions()
    built.close_extensions()
    assert ext.calls == ["source", "attach", "close"]  # once


def test_resumed_alerts_reach_every_sink_again() -> None:
    ext = Everything(frames=4)
    built = build_pipeline(config(), extensions=[ext])
    assert ext.hooks is not None and built.publisher is not None
    ext.hooks.pause_alerts(True)
    ext.hooks.pause_alerts(False)
    built.pipeline.start()
    assert built.pipeline.join(30)
    assert ext.pausable.sent == ext.always.sent == [("TwoWires", s) for s in ("firing", "resolved") * 2]
    assert ext.pausable.closed and ext.always.closed  # closed with the publisher


def test_the_daemon_runs_the_lifecycle_in_order_and_the_given_source_wins() -> None:
    first, second = Everything(frames=3), Everything(frames=5)
    daemon = Daemon(config(), extensions=[first, second])
    assert first.calls == ["source", "attach"] and second.calls == ["attach"]  # the first source is taken
    daemon.start()
    assert daemon.wait(30)
    assert first.calls == ["source", "attach", "start", "close"]
    assert second.calls == ["attach", "start", "close"]
    assert [r.frame_id for r in second.results] == [1, 2, 3]  # every extension sees the same frames
    given = Everything(frames=2)
    other = Daemon(config(), source=MessageListSource([encode_array10(7, rods(7))]), extensions=[given])
    assert "source" not in given.calls
    other.start()
    assert other.wait(30)
    assert [r.frame_id for r in given.results] == [7]


def test_an_extension_failing_to_attach_closes_those_attached_before_and_the_sinks() -> None:
    class Broken(BaseExtension):
        name = "broken"

        def attach(self, hooks: Hooks) -> None:
            raise RuntimeError("cannot attach")

    ok = Everything(frames=1)
    with pytest.raises(RuntimeError, match="cannot attach"):
        build_pipeline(config(), extensions=[ok, Broken()])
    assert ok.calls == ["source", "attach", "close"]
    assert ok.sink.closed and ok.pausable.closed  # the pipeline's sinks (publisher included) were closed


def test_without_change_detection_there_is_nothing_to_wrap_and_a_reset_is_harmless() -> None:
    wrapped: list[bool] = []

    class Wrapper(BaseExtension):
        def attach(self, hooks: Hooks) -> None:
            wrapped.append(hooks.wrap_detector(lambda inner: inner))
            hooks.reset_changepoints()

    source = MessageListSource([encode_array10(i, rods(i)) for i in range(3)])
    built = build_pipeline(config(changepoint={"enabled": False}), source=source, extensions=[Wrapper()])
    built.pipeline.start()
    assert built.pipeline.join(30) and built.pipeline.processed == 3
    assert wrapped == [False]


# -- the example of docs/CONTRACTS.md, "Writing an extension" ------------------------------------------------
class FileAlerts:
    """An ``AlertSink``: one line per alert transition (an append to a local file does not block)."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8")

    def send(self, alert: Alert) -> None:
        self.file.write(f"{alert.state} {alert.name} {dict(alert.labels)}\n")
        self.file.flush()

    def close(self, timeout: float = 5.0) -> None:
        self.file.close()


class AlertFile(BaseExtension):
    name = "alert-file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def attach(self, hooks: Hooks) -> None:
        hooks.add_alert_sink(FileAlerts(self.path))  # held back, like the others, while alerts are paused


def test_the_documented_example_writes_each_alert_transition(tmp_path: Path) -> None:
    source = MessageListSource([encode_array10(i, rods(i)) for i in range(1, 5)])
    daemon = Daemon(config(), source=source, extensions=[AlertFile(tmp_path / "alerts.txt")])
    daemon.start()
    assert daemon.wait(30)
    lines = (tmp_path / "alerts.txt").read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [["firing", "TwoWires"], ["resolved", "TwoWires"]] * 2



def test_an_observer_only_listens() -> None:
    from wirewatch.extension import Observer

    results: list[int] = []
    changepoints: list[ChangePoint] = []
    source = MessageListSource([encode_array10(i, rods(i)) for i in range(1, 4)])
    daemon = Daemon(config(), source=source, extensions=[
        Observer(on_result=lambda r: results.append(r.frame_id), on_changepoint=changepoints.append)])
    daemon.start()
    assert daemon.wait(30)
    assert results == [1, 2, 3] and changepoints == []  # three frames are too few for a change point
