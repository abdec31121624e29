"""The real DECTRIS EIGER2 Stream V2 captures decode to exactly the numbers in expected.json."""

from __future__ import annotations

import json
from pathlib import Path

import cbor2
import numpy as np
import pytest

from wirewatch.errors import DecodeError
from wirewatch.ingest.describe import describe_file
from wirewatch.ingest.stream2 import Stream2Decoder
from wirewatch.types import Frame, SeriesEnd, SeriesStart

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dectris-stream2"
pytestmark = pytest.mark.skipif(not (DATA / "expected.json").exists(),
                                reason=f"shared DECTRIS captures not found at {DATA}")


def _expected() -> dict:
    return json.loads((DATA / "expected.json").read_text()) if (DATA / "expected.json").exists() else {}


@pytest.mark.parametrize("name", sorted(_expected()))
def test_capture_matches_expected_exactly(name: str) -> None:
    # every key, every channel, every number (sum, NODATA count, valid sum, sha256 of the pixels)
    assert describe_file(DATA / name) == _expected()[name]


def test_every_capture_file_is_listed() -> None:
    files = {str(p.relative_to(DATA)) for p in DATA.rglob("*.cbor")}
    assert files == set(_expected())


@pytest.mark.parametrize("folder", ["bslz4_16bit", "lz4_8bit"])
def test_decoder_series_events_and_frames(folder: str) -> None:
    expected = _expected()
    decoder = Stream2Decoder()
    events = []
    for path in sorted((DATA / folder).glob("*.cbor")):
        events += decoder.decode([path.read_bytes()], received_at=1.0)
    # the start message is not in the captures: an implicit SeriesStart precedes the first image
    assert isinstance(events[0], SeriesStart) and events[0].meta["implicit"] is True
    assert isinstance(events[-1], SeriesEnd)
    frames = [e for e in events if isinstance(e, Frame)]
    images = sorted(k for k, v in expected.items() if k.startswith(folder) and v["type"] == "image")
    assert [f.frame_id for f in frames] == [expected[k]["image_id"] for k in images]
    for frame, key in zip(frames, images, strict=True):
        want = expected[key]["channels"]["threshold_1"]  # default channel: the first one
        assert frame.series_id == expected[key]["series_unique_id"] == events[-1].series_id
        assert frame.meta["series_number"] == expected[key]["series_id"]
        assert frame.meta["channel"] == "threshold_1"
        assert frame.image.shape == tuple(want["shape"]) and frame.image.dtype == np.dtype(want["dtype"])
        assert int(frame.image.sum(dtype=np.uint64)) == want["sum"]
        assert frame.valid is not None and int((~frame.valid).sum()) == want["nodata_pixels"]
        assert frame.pixel_size_nm is None  # no start message seen
        # time = series_date + start_time, read here independently with plain cbor2
        raw = cbor2.loads((DATA / key).read_bytes(), tag_hook=lambda tag, immutable: None)
        num, den = raw["start_time"]
        assert frame.time == pytest.approx(raw["series_date"].timestamp() + num / den, abs=1e-6)
        assert 1.6e9 < frame.time < 1.7e9  # February 2023


def test_channel_selection_and_nodata_mask() -> None:
    body = (DATA / "bslz4_16bit" / "000001.cbor").read_bytes()
    want = _expected()["bslz4_16bit/000001.cbor"]["channels"]["difference"]
    (_, frame) = Stream2Decoder(channel="difference").decode([body], 0.0)
    assert isinstance(frame, Frame) and frame.meta["channel"] == "difference"
    assert frame.valid is not None
    assert int((~frame.valid).sum()) == want["nodata_pixels"] == 194490
    assert int(frame.image[frame.valid].sum(dtype=np.uint64)) == want["valid_sum"]
    assert np.all(frame.image[~frame.valid] == np.iinfo(np.uint16).max)


def test_unknown_channel_is_a_decode_error() -> None:
    body = (DATA / "lz4_8bit" / "000001.cbor").read_bytes()
    with pytest.raises(DecodeError) as info:
        Stream2Decoder(channel="threshold_9").decode([body], 0.0)
    assert info.value.kind == "unknown_channel" and "threshold_1" in str(info.value)


def test_inspect_cli_prints_expected_json() -> None:
    from typer.testing import CliRunner

    from wirewatch.cli.app import app

    files = [str(DATA / name) for name in sorted(_expected())]
    result = CliRunner().invoke(app, ["inspect", *files])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {str(Path(k).relative_to(DATA)): v for k, v in report.items()} == _expected()


def test_real_messages_are_classified_from_their_prefix() -> None:
    from wirewatch.ingest.classify import stream2_type

    for name, want in _expected().items():
        body = (DATA / name).read_bytes()
        assert stream2_type(body[:64]) == want["type"]  # the first 64 bytes are enough
        assert Stream2Decoder().is_control([body]) == (want["type"] in ("start", "end"))
