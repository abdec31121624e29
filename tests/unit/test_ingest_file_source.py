"""File replay: image folders become array-1.0 frames, captures replay as they are, pacing, bad files skipped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from wirewatch.errors import DecodeError, InputError
from wirewatch.ingest import encode as enc
from wirewatch.ingest.capture import guess_format, read_capture, write_capture, write_zmsg
from wirewatch.ingest.decoders import make_decoder
from wirewatch.ingest.file_source import FileSource
from wirewatch.types import Frame


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def _replay(source: FileSource) -> list:
    decoder = make_decoder(source.format_name)
    events = []
    source.start()
    while (m := source.get(timeout=1)) is not None:
        events += decoder.decode(m.parts, m.received_at)
    return events


def test_image_folder_replays_png_and_tiff_in_name_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (20, 30)).astype(np.uint8)
    b = rng.integers(0, 60000, (20, 30)).astype(np.uint16)
    c = rng.random((20, 30)).astype(np.float32)
    rgb = rng.integers(0, 255, (20, 30, 3)).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "000.png")
    tifffile.imwrite(tmp_path / "001.tif", b)
    tifffile.imwrite(tmp_path / "002.tiff", c)
    Image.fromarray(rgb).save(tmp_path / "003.png")
    (tmp_path / "notes.txt").write_text("ignored")
    source = FileSource(tmp_path, pixel_size_nm=2.0, signal="optical_density")
    assert source.format_name == "array-1.0" and not source.finished
    frames = _replay(source)
    assert source.finished and [f.frame_id for f in frames] == [0, 1, 2, 3]
    np.testing.assert_array_equal(frames[0].image, a)
    np.testing.assert_array_equal(frames[1].image, b)
    np.testing.assert_array_equal(frames[2].image, c)
    assert frames[3].image.dtype == np.uint8 and frames[3].image.shape == (20, 30)
    assert all(f.pixel_size_nm == 2.0 and f.signal == "optical_density" for f in frames)
    assert source.stats().delivered == 4 and source.stats().received == 4


def test_captures_replay_with_series_events(tmp_path: Path) -> None:
    images = [np.full((8, 8), i, np.uint16) for i in range(3)]
    for i, parts in enumerate(enc.encode_series("stream2", images, pixel_size_nm=9.0)):
        write_capture(tmp_path / f"{i:06d}", parts, "stream2")
    source = FileSource(tmp_path)
    assert source.format_name == "stream2"
    events = _replay(source)
    assert [type(e).__name__ for e in events] == ["SeriesStart", "Frame", "Frame", "Frame", "SeriesEnd"]
    assert [int(e.image[0, 0]) for e in events if isinstance(e, Frame)] == [0, 1, 2]


@pytest.mark.parametrize("fmt", ["array-1.0", "stream1"])
def test_capture_files_roundtrip(tmp_path: Path, fmt: str) -> None:
    messages = enc.encode_series(fmt, [np.eye(5, dtype=np.uint16)])
    for i, parts in enumerate(messages):
        path = write_capture(tmp_path / f"{i:03d}", parts, fmt)
        assert read_capture(path) == parts
        assert guess_format(parts) == fmt
    events = _replay(FileSource(tmp_path))
    frames = [e for e in events if isinstance(e, Frame)]
    assert len(frames) == 1 and np.array_equal(frames[0].image, np.eye(5))


def test_pacing_follows_the_rate(tmp_path: Path) -> None:
    for i in range(4):
        Image.fromarray(np.full((4, 4), i, np.uint8)).save(tmp_path / f"{i}.png")
    clock = FakeClock()
    source = FileSource(tmp_path, rate=10.0, clock=clock, sleep=clock.sleep)
    source.start()
    times = []
    while source.get(timeout=1) is not None:
        times.append(round(clock.now - 100.0, 6))
    assert times == [0.0, 0.1, 0.2, 0.3]
    # a timeout shorter than the wait returns None without skipping the frame
    clock2 = FakeClock()
    src = FileSource(tmp_path, rate=1.0, clock=clock2, sleep=clock2.sleep)
    src.start()
    assert src.get(timeout=0) is not None
    assert src.get(timeout=0.25) is None and src.get(timeout=0.25) is None
    assert src.get(timeout=1) is not None and src.stats().delivered == 2


def test_loop_keeps_counting_frame_ids(tmp_path: Path) -> None:
    for i in range(2):
        Image.fromarray(np.full((4, 4), i, np.uint8)).save(tmp_path / f"{i}.png")
    source = FileSource(tmp_path, loop=True)
    decoder = make_decoder("array-1.0")
    frames = [decoder.decode(source.get().parts)[0] for _ in range(5)]  # type: ignore[union-attr]
    assert [f.frame_id for f in frames] == [0, 1, 2, 3, 4]
    assert [int(f.image[0, 0]) for f in frames] == [0, 1, 0, 1, 0]
    assert not source.finished
    source.close()
    assert source.finished and source.get(0) is None


def test_unreadable_files_are_counted_and_skipped(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "0.png")
    (tmp_path / "1.png").write_bytes(b"not a png")
    Image.fromarray(np.ones((4, 4), np.uint8)).save(tmp_path / "2.png")
    rejected = []
    source = FileSource(tmp_path, on_reject=lambda kind, detail: rejected.append(kind))
    frames = _replay(source)
    assert [int(f.image[0, 0]) for f in frames] == [0, 1]
    assert rejected == ["unreadable"] and source.stats().rejected == {"unreadable": 1}
    assert source.stats().received == 3


def test_bad_captures(tmp_path: Path) -> None:
    write_zmsg(tmp_path / "a.zmsg", [b"x"])
    data = (tmp_path / "a.zmsg").read_bytes()
    for name, blob, kind in [("short.zmsg", data[:-1], "truncated"), ("magic.zmsg", b"XX" + data, "bad_header"),
                             ("trail.zmsg", data + b"!", "bad_header")]:
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(DecodeError) as info:
            read_capture(tmp_path / name)
        assert info.value.kind == kind
    with pytest.raises(InputError, match="unknown capture type"):
        read_capture(tmp_path / "x.txt")
    with pytest.raises(InputError, match="not found"):
        read_capture(tmp_path / "missing.cbor")


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        FileSource(tmp_path / "nope")
    with pytest.raises(InputError, match="no images"):
        FileSource(tmp_path)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "0.png")
    (tmp_path / "1.cbor").write_bytes(enc.encode_stream2_end()[0])
    with pytest.raises(InputError, match="both images and captured"):
        FileSource(tmp_path)
    with pytest.raises(InputError, match="rate"):
        FileSource(tmp_path / "0.png", rate=-1)


def test_inspect_reports_each_file_and_fails_on_bad_ones(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from wirewatch.cli.app import app

    good = write_capture(tmp_path / "good", enc.encode_array10(3, np.arange(6, dtype=np.uint16).reshape(2, 3)),
                         "array-1.0")
    bad = tmp_path / "bad.cbor"
    bad.write_bytes(b"\x9b" + (10**12).to_bytes(8, "big"))
    result = CliRunner().invoke(app, ["inspect", str(good), str(bad)])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report[str(good)] == {"type": "array-1.0", "frame": 3, "channels": {"image": {
        "shape": [2, 3], "dtype": "uint16", "sum": 15, "nodata_pixels": 0, "valid_sum": 15,
        "sha256": "d19c56fe954b4adbb040580d9ae4e98a692b51f8e2cab91d7ddecb903cec9204"}}}
    assert report[str(bad)]["error"] == "truncated"


def test_tiff_stack_is_a_movie(tmp_path: Path) -> None:
    movie = np.stack([np.full((6, 7), i, np.uint16) for i in range(5)])
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    source = FileSource(tmp_path / "movie.tif")
    frames = _replay(source)
    assert [f.frame_id for f in frames] == [0, 1, 2, 3, 4]
    assert [int(f.image[0, 0]) for f in frames] == [0, 1, 2, 3, 4]
    assert all(f.image.shape == (6, 7) for f in frames)


def test_images_above_max_pixels_are_rejected(tmp_path: Path) -> None:
    from wirewatch.ingest.limits import DecodeLimits

    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "0.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "1.png")
    source = FileSource(tmp_path, limits=DecodeLimits(max_pixels=100))
    assert [f.image.shape for f in _replay(source)] == [(4, 4)]
    assert source.stats().rejected == {"oversized": 1}


def test_looping_over_only_unreadable_files_stops_instead_of_spinning(tmp_path: Path) -> None:
    (tmp_path / "0.png").write_bytes(b"broken")
    (tmp_path / "1.png").write_bytes(b"broken too")
    source = FileSource(tmp_path, loop=True)
    assert source.get(timeout=1) is None
    assert source.finished and source.stats().rejected == {"unreadable": 2}
