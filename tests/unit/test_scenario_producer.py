"""Simulator frames and messages without sockets: what the daemon will decode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wirewatch.errors import ConfigError
from wirewatch.ingest import make_decoder
from wirewatch.preprocess import PreprocessConfig, prepare
from wirewatch.simulate.producer import OD_FULL_SCALE, FrameMaker, SeriesEncoder, Simulator, reserve_nodata
from wirewatch.simulate.scenario import Scenario
from wirewatch.simulate.truth import TRUTH_STATISTICS, agreement
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
        np.testing.assert_array_equal(f.image, reserve_nodata(img) if fmt != "array-1.0" else img)
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


@pytest.mark.parametrize("fmt", ["stream2", "stream1"])
def test_saturated_wire_crossings_are_not_sent_as_nodata(fmt: str) -> None:
    # Crossing wires saturate the 8-bit grey at 255, which a DECTRIS stream reserves for NODATA.
    sc = _scenario(base={"wires.count": {"min": 12, "max": 12}, "wires.width": {"kind": "uniform", "low": 8,
                                                                                  "high": 10}})
    image = FrameMaker(sc).image(0)
    assert (image == 255).sum() > 0, "the test frame must have saturated crossings"
    enc = SeriesEncoder(fmt)
    decoder = make_decoder(fmt)
    messages = [*enc.start(image.shape, "uint8", 1), enc.image(0, image), *enc.end()]
    (frame,) = [e for m in messages for e in decoder.decode(m, 0.0) if isinstance(e, Frame)]
    assert frame.valid is not None and frame.valid.all()  # no NODATA pixel the scene did not have
    np.testing.assert_array_equal(frame.image, np.minimum(image, 254))
    prepared = prepare(frame, PreprocessConfig())
    assert prepared.valid is None and prepared.image[image == 255].min() > 0.99  # bright, not a hole
    # A real NODATA pixel (the dtype maximum from the detector) is still one.
    gap = np.minimum(image, 254)
    gap[:, 10] = 255
    encoded = SeriesEncoder("array-1.0").image(0, gap)  # the simulator's own path would lower it
    assert make_decoder("array-1.0").decode(encoded, 0.0)[0].valid is None
    from wirewatch.ingest import encode_stream2_image

    raw = encode_stream2_image(1, gap, series_id=1, series_unique_id="x")
    (real,) = [e for e in make_decoder("stream2").decode(raw, 0.0) if isinstance(e, Frame)]
    assert real.valid is not None and int((~real.valid).sum()) == 64


def test_the_simulator_records_what_it_drew() -> None:
    sc = _scenario()
    image, truth = FrameMaker(sc).draw(1)
    sample = FrameMaker(sc).sample(1)
    np.testing.assert_array_equal(image, sample.image)
    assert set(TRUTH_STATISTICS) <= set(truth)
    assert truth["particle_count"] == len(sample.wires) == 3
    assert truth["coverage_fraction"] == pytest.approx(sample.masks.any(axis=0).mean())
    # Prismatic wires: the masks' measured width is the drawn width (within the pixel grid).
    assert truth["width_px_mean"] == pytest.approx(truth["width_drawn_mean"], abs=1.0)
    sim = Simulator(sc, frames=2)
    assert sim._images(1) is not None and sim.truth[1] == truth


def test_agreement_compares_frame_by_frame() -> None:
    truth = {0: {"particle_count": 10.0, "width_px_mean": 5.0, "length_px_mean": 50.0},
             1: {"particle_count": 20.0, "width_px_mean": 6.0, "length_px_mean": 60.0},
             2: {"particle_count": 0.0, "width_px_mean": float("nan"), "length_px_mean": float("nan")}}
    measured = {0: {"particle_count": 9.0, "width_px_mean": 5.5, "length_px_mean": 48.0},
                1: {"particle_count": 22.0, "width_px_mean": 7.0, "length_px_mean": 60.0},
                2: {"particle_count": 1.0, "width_px_mean": 4.0, "length_px_mean": 9.0},
                5: {"particle_count": 3.0}}  # not drawn: ignored
    a = agreement(measured, truth)
    assert a["frames"] == 3
    assert a["count_rel_error_mean"] == pytest.approx(0.1)  # frame 2 has no true particle: skipped
    assert a["count_bias"] == pytest.approx(0.0)
    assert a["width_error_px_mean"] == pytest.approx(0.75) and a["width_bias_px"] == pytest.approx(0.75)
    assert a["length_error_px_mean"] == pytest.approx(1.0) and a["length_bias_px"] == pytest.approx(-1.0)


def test_simulate_cli_writes_the_truth_of_every_frame_sent(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from wirewatch.cli.app import app

    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nframes: 3\nseed: 1\nsize: 64\nbase:\n  wires.count: {min: 4, max: 4}\n"
                        "changes:\n  - {frame: 2, scale: {wires.width: 1.5}}\n")
    truth = tmp_path / "truth.json"
    result = CliRunner().invoke(app, ["simulate", "--endpoint", "tcp://127.0.0.1:*", "--socket", "pub", "--rate", "0",
                                      "--frames", "3", "--scenario", str(scenario), "--truth", str(truth)])
    assert result.exit_code == 0, result.output
    doc = json.loads(truth.read_text())
    assert doc["change_points"] == [2] and doc["statistics"] == list(TRUTH_STATISTICS)
    assert [t["frame"] for t in doc["per_frame"]] == [0, 1, 2]
    assert all(t["particle_count"] == 4 for t in doc["per_frame"])
    assert doc["per_frame"][2]["width_drawn_mean"] > doc["per_frame"][1]["width_drawn_mean"]
