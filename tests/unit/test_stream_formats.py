"""The stream format registry is the single source: a format registered once (here a test-only ``toy-1``)
is accepted by the config, classified and counted by a real ZeroMQ source on loopback, decoded, guessed,
described, captured and simulated, with no other file knowing about it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import zmq

from wirewatch.errors import ConfigError, DecodeError
from wirewatch.ingest import IngestConfig, ZmqSource, format_names, get_format, make_decoder, register_format
from wirewatch.ingest.base import Parts
from wirewatch.ingest.capture import read_capture, write_capture
from wirewatch.ingest.describe import describe_message
from wirewatch.ingest.formats import StreamFormat, guess_format, is_control, unregister
from wirewatch.ingest.formats.common import channel_summary
from wirewatch.ingest.limits import DEFAULT_LIMITS, DecodeLimits
from wirewatch.simulate.producer import SeriesEncoder
from wirewatch.types import Frame, SeriesEnd, SeriesStart, StreamEvent

MAGIC = b"TOY1 "


class ToyDecoder:
    """``TOY1 start`` / ``TOY1 end`` / ``TOY1 {json}`` + little-endian uint16 pixels."""

    format_name = "toy-1"

    def __init__(self, *, limits: DecodeLimits = DEFAULT_LIMITS, gain: int = 1) -> None:
        self.limits, self.gain = limits, gain

    def is_control(self, parts: Parts) -> bool:
        return TOY.is_control(parts)

    def decode(self, parts: Parts, received_at: float | None = None) -> list[StreamEvent]:
        t = 0.0 if received_at is None else received_at
        if not parts or not parts[0].startswith(MAGIC):
            raise DecodeError("unknown_type", "not a toy-1 message")
        body = parts[0][len(MAGIC):]
        if body == b"start":
            return [SeriesStart(series_id="toy", time=t)]
        if body == b"end":
            return [SeriesEnd(series_id="toy", time=t)]
        header = json.loads(body)
        image = np.frombuffer(parts[1], dtype="<u2").reshape(header["shape"]) * self.gain
        return [Frame(frame_id=header["frame"], image=image, time=t, series_id="toy", received_at=t)]


class ToyWriter:
    def __init__(self, series_id: int) -> None:
        self.series_id = series_id

    def start(self, shape: tuple[int, int], dtype: str, count: int) -> list[list[bytes]]:
        return [[MAGIC + b"start"]]

    def image(self, frame: int, image: np.ndarray, *, time: float | None = None) -> list[bytes]:
        header = {"frame": frame, "shape": [int(image.shape[0]), int(image.shape[1])]}
        return [MAGIC + json.dumps(header).encode(), image.astype("<u2").tobytes()]

    def end(self) -> list[list[bytes]]:
        return [[MAGIC + b"end"]]


class ToyFormat(StreamFormat):
    name = "toy-1"
    summary = "a test-only format"
    decoder_options = frozenset({"gain"})
    reserves_nodata = True

    def decoder(self, *, limits: DecodeLimits = DEFAULT_LIMITS, **options: Any) -> ToyDecoder:
        return ToyDecoder(limits=limits, **options)

    def is_control(self, parts: Parts) -> bool:
        return len(parts) == 1 and parts[0] in (MAGIC + b"start", MAGIC + b"end")

    def writer(self, *, series_id: int = 1, series_unique_id: str | None = None,
               pixel_size_nm: float | None = None, signal: str | None = None, i0: float | None = None,
               modality: str | None = None, **options: Any) -> ToyWriter:
        return ToyWriter(series_id)

    def describe(self, parts: list[bytes], limits: DecodeLimits) -> dict[str, Any]:
        events = ToyDecoder(limits=limits).decode(parts, 0.0)
        frames = [e for e in events if isinstance(e, Frame)]
        return {"type": "toy", **({"channels": {"image": channel_summary(frames[0].image)}} if frames else {})}

    def sniff(self, parts: Sequence[bytes]) -> bool:
        return bool(parts) and parts[0].startswith(MAGIC)


TOY = ToyFormat()


class Clash(ToyFormat):
    name = "stream2"  # taken by the built-in Stream V2


@pytest.fixture
def toy() -> Iterator[ToyFormat]:
    register_format(TOY)
    try:
        yield TOY
    finally:
        unregister(TOY.name)


def _images(n: int) -> list[np.ndarray]:
    return [np.arange(12, dtype=np.uint16).reshape(3, 4) + 100 * i for i in range(n)]


def test_config_accepts_exactly_the_registered_formats(toy: ToyFormat) -> None:
    assert IngestConfig(format="toy-1").format == "toy-1"
    unregister("toy-1")
    with pytest.raises(ValueError) as err:
        IngestConfig(format="toy-1")
    message = str(err.value)
    assert "not a registered stream format; allowed: array-1.0, stream2, stream1" in message
    assert "toy-1" in message and "--format pva" in message  # the value, and where PV Access input is set


def test_zmq_source_classifies_and_the_registry_decodes_a_registered_format(toy: ToyFormat) -> None:
    ctx = zmq.Context()
    cfg = IngestConfig(endpoint="tcp://127.0.0.1:*", bind=True, format="toy-1", policy="queue", buffer=64)
    source = ZmqSource(cfg, context=ctx)
    push = ctx.socket(zmq.PUSH)
    try:
        source.start()
        assert source.endpoint is not None and "format toy-1" in source.describe_input()
        push.connect(source.endpoint)
        messages = toy.encode_series(_images(3), first_frame=7)
        for parts in messages:
            push.send_multipart(parts)
        got = []
        deadline = time.monotonic() + 10
        while len(got) < len(messages) and time.monotonic() < deadline:
            msg = source.get(timeout=0.1)
            if msg is not None:
                got.append(msg)
        assert [m.control for m in got] == [True, False, False, False, True]
        decoder = make_decoder("toy-1", gain=2, channel="ignored: not a toy option")
        events = [e for m in got for e in decoder.decode(m.parts, m.received_at)]
        frames = [e for e in events if isinstance(e, Frame)]
        assert [f.frame_id for f in frames] == [7, 8, 9]
        assert int(frames[2].image.sum()) == 2 * (66 + 12 * 200)  # gain 2 reached the toy decoder
        assert isinstance(events[0], SeriesStart) and isinstance(events[-1], SeriesEnd)
        stats = source.stats()
        assert (stats.received, stats.delivered, stats.buffered, dict(stats.rejected)) == (5, 5, 0, {})
        assert stats.received_bytes == sum(len(p) for m in messages for p in m)
    finally:
        push.close(0)
        source.close()
        ctx.term()


def test_guess_describe_capture_and_simulate_through_the_registry(toy: ToyFormat, tmp_path: Any) -> None:
    start, image, end = toy.encode_series(_images(1))
    assert [guess_format(m) for m in (start, image, end)] == ["toy-1"] * 3
    assert is_control("toy-1", start) and not is_control("toy-1", image)
    assert describe_message(image)["channels"]["image"]["sum"] == 66
    path = write_capture(tmp_path / "one", image, "toy-1")
    assert path.suffix == ".zmsg" and read_capture(path) == image
    enc = SeriesEncoder("toy-1")
    top = np.full((3, 4), 65535, dtype=np.uint16)
    (frame,) = make_decoder("toy-1").decode(enc.image(5, top), 0.0)
    assert isinstance(frame, Frame) and int(frame.image.max()) == 65534  # reserves_nodata applied
    assert enc.start((3, 4), "uint16", 1) == [start] and enc.end() == [end]


def test_builtin_formats_and_registry_errors() -> None:
    assert format_names()[:3] == ("array-1.0", "stream2", "stream1")
    assert {get_format(n).name for n in format_names()} == set(format_names())
    with pytest.raises(ConfigError, match=re.escape("unknown input format 'hdf5'; allowed: array-1.0, stream2, stream1")):
        get_format("hdf5")
    with pytest.raises(ValueError, match="already registered"):
        register_format(Clash())
    assert not is_control("no-such-format", [b"x"])


def test_pva_format_registers_from_epics_and_decodes_its_writer() -> None:
    from wirewatch.epics.pva_format import register_pva_format

    fmt = register_pva_format()
    assert register_pva_format() is fmt and "pva" in format_names()  # idempotent
    img = np.arange(20, dtype=np.uint16).reshape(4, 5)
    (msg,) = fmt.encode_series([img], pixel_size_nm=2.5)
    assert guess_format(msg) == "pva"
    events = make_decoder("pva", channel="dropped").decode(msg, 1.0)
    (frame,) = [e for e in events if isinstance(e, Frame)]
    assert frame.image.tolist() == img.tolist() and frame.pixel_size_nm == 2.5
    assert describe_message(msg)["channels"]["value"]["sum"] == 190


def test_pva_source_counts_an_oversized_update_once() -> None:
    """BufferedSource's counters: an update refused as oversized is received once, rejected once."""
    pytest.importorskip("p4p")
    from wirewatch.epics.config import EpicsInputConfig
    from wirewatch.epics.ntndarray import make_ntndarray
    from wirewatch.epics.source import PvaSource

    rejected: list[str] = []
    source = PvaSource(EpicsInputConfig(pv="TEST:image"), limits=DecodeLimits(max_message_bytes=1024),
                       on_reject=lambda kind, detail: rejected.append(kind))
    source._on_update(make_ntndarray(np.zeros((8, 8), np.uint8), unique_id=1))  # the p4p callback's call
    source._on_update(make_ntndarray(np.zeros((64, 64), np.uint16), unique_id=2))
    stats = source.stats()
    assert (stats.received, stats.buffered, dict(stats.rejected)) == (2, 1, {"oversized": 1})
    assert stats.received == stats.delivered + sum(stats.dropped.values()) + sum(stats.rejected.values()) \
        + stats.buffered
    assert rejected == ["oversized"] and "PV Access monitor of TEST:image, format pva" in source.describe_input()
    source.close()
