"""Simulator frames and messages without sockets: what the daemon will decode."""

from __future__ import annotations

import numpy as np
import pytest

from wirewatch.errors import ConfigError
from wirewatch.ingest import make_decoder
from wirewatch.preprocess import PreprocessConfig, prepare
from wirewatch.simulate.producer import OD_FULL_SCALE, FrameMaker, SeriesEncoder, Simulator
from wirewatch.simulate.scenario import Scenario
from wirewatch.types import Frame, SeriesEnd, SeriesStart


def _scenario(**kw: object) -> Scenario:
    return Scenario.model_validate({"name": "t", "size": 64, "seed": 2, "pixel_size_nm": 4.0,
                                    "base": {"wires.count": {"min": 3, "max": 3}}, **kw})


def test_frames_are_reproducible_and_differ_between_frames() -> None:
    maker = FrameMaker(_scenario())
    a, b = maker.image(0), maker.image(1)
    assert a.dtype == np.uint8 and a.shape == (64, 64)
    np.testing.assert_array_equal(a, FrameMaker(_scenario()).image(0))
    assert not np.array_equal(a, b)


def test_transmission_frames_convert_back_to_the_optical_density_image() -> None:
    sc = _scenario(signal="transmission", i0=20000.0)
    od_img = FrameMaker(_scenario()).image(0)
    counts = FrameMaker(sc).image(0)
    assert counts.dtype == np.uint16 and counts.max() <= 20000
    frame = Frame(frame_id=0, image=counts, time=0.0, signal="transmission", meta={"i0": 20000.0})
    od = prepare(frame, PreprocessConfig()).signal
    np.testing.assert_allclose(od, od_img / 255.0 * OD_FULL_SCALE, atol=2e-3)


@pytest.mark.parametrize("fmt", ["array-1.0", "stream2", "stream1"])
def test_series_messages_decode_to_the_frames_sent(fmt: str) -> None:
    maker = FrameMaker(_scenario())
    enc = SeriesEncoder(fmt, series_id=3, pixel_size_nm=4.0, signal="optical_density")
    images = [maker.image(i) for i in range(3)]
    messages = [*enc.start((64, 64), "uint8", 3), *(enc.image(10 + i, img) for i, img in enumerate(images)),
                *enc.end()]
    decoder = make_decoder(fmt)
    events = [e for m in messages for e in decoder.decode(m, 0.0)]
    frames = [e for e in events if isinstance(e, Frame)]
    assert [f.frame_id for f in frames] == [10, 11, 12]
    for f, img in zip(frames, images, strict=True):
        np.testing.assert_array_equal(f.image, img)
        assert f.pixel_size_nm == pytest.approx(4.0)
    if fmt != "array-1.0":
        assert isinstance(events[0], SeriesStart) and isinstance(events[-1], SeriesEnd)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="format"):
        SeriesEncoder("png")
    with pytest.raises(ConfigError, match="rate"):
        Simulator(_scenario(), rate=-1)
    with pytest.raises(ConfigError, match="frames"):
        Simulator(_scenario(), frames=0)
