"""quality.fallback: the watershed takes over while the shipped model is unreliable, never on frames the
model sees well, switches back with hysteresis, and each frame says who segmented it. The streams run
through the daemon's own composition (``build_pipeline``: scale and polarity as shipped).

The unreliable stream is the default wires drowned in noise (``DROWNED``: 3 photons at full scale, read
noise 60 grey levels, against wires of ~25-75 grey levels), where the model-free foreground the score
checks against is itself noise, so no model scores well there: reliability 0.000-0.008 with the model
shipped before issue 37, 0.000-0.022 with the mix candidate. The panel's heavy-noise set (100 photons,
8 grey levels) was used before; it only tested the old model's weakness (0.10-0.32 old, 0.51-0.83 mix)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from wirewatch.config.daemon import DaemonConfig, load_daemon_config, shipped_config_path
from wirewatch.daemon.build import build_pipeline, resolve_backend
from wirewatch.evaluate.panel import PanelSet, select_sets, set_frames
from wirewatch.ingest import encode_array10
from wirewatch.ingest.memory import MessageListSource
from wirewatch.publish.rules import build_rule
from wirewatch.quality import QualityConfig, QualityMonitor
from wirewatch.quality.fallback import FallbackConfig, FallbackSegmenter
from wirewatch.synth.config import preset_config, with_overrides
from wirewatch.types import ChangePoint, FrameStats

SIZE = 256
DROWNED = {"noise.photons": 3.0, "noise.gaussian_sigma": 60.0}


def frames(name: str, count: int) -> list[np.ndarray]:
    """``count`` uint8 frames of the named panel set, or of ``"drowned"``: the heavy-noise set's wires and
    seeds under ``DROWNED`` noise."""
    [(index, panel_set)] = select_sets(["heavy-noise" if name == "drowned" else name])
    if name == "drowned":
        panel_set = PanelSet(name, "default wires drowned in noise",
                             lambda size: with_overrides(preset_config("ptychography", size), DROWNED, "test"))
    return [np.clip(np.rint(f * 255), 0, 255).astype(np.uint8) for f in set_frames(index, panel_set, count, SIZE)[1]]


def config(fallback: Any = None) -> DaemonConfig:
    return DaemonConfig.model_validate({
        "ingest": {"policy": "queue"}, "segment": {"backend": "auto"}, "changepoint": {"enabled": False},
        "publish": {"zmq": None}, "alerts": {"sinks": [], "rules": []}, "http": {"enabled": False},
        "quality": {"fallback": fallback}, "pipeline": {"shutdown_timeout_s": 60}})


def daemon_run(images: list[np.ndarray], fallback: Any = None) -> list[dict[str, float]]:
    """Per-frame aggregates of ``images`` run through the daemon's pipeline."""
    if resolve_backend(config().segment)[0] != "onnxruntime":
        pytest.skip("the shipped model is not installed here")
    source = MessageListSource([encode_array10(i, im, signal="optical_density") for i, im in enumerate(images)])
    built = build_pipeline(config(fallback), source=source)
    rows: dict[int, dict[str, float]] = {}
    built.pipeline.listeners.append(lambda r: rows.__setitem__(r.frame.frame_id, dict(r.stats.aggregates)))
    built.pipeline.start()
    assert built.pipeline.join(120)
    return [rows[i] for i in sorted(rows)]


def test_config_accepts_a_name_and_keeps_it_off_by_default() -> None:
    assert QualityConfig().fallback is None
    assert QualityConfig.model_validate({"fallback": "watershed"}).fallback == FallbackConfig(segmenter="watershed")
    assert QualityConfig.model_validate({"fallback": "off"}).fallback is None
    with pytest.raises(ValueError, match="recover_above"):
        FallbackConfig(below=0.5, recover_above=0.4)


def test_drowning_noise_switches_to_the_watershed_and_a_good_stream_never_does() -> None:
    good = daemon_run(frames("preset-ptychography", 14), "watershed")
    assert [r["segmenter_fallback"] for r in good] == [0.0] * 14
    assert min(r["reliability"] for r in good) > 0.6
    assert not any("reliability_model" in r for r in good)
    noisy = daemon_run(frames("drowned", 14), "watershed")
    # the model's reliability stays below 0.45 (0.00-0.02): the 10th frame in a row is the watershed's, and
    # so is every one after; the record keeps the model's own score beside the published one
    assert [r["segmenter_fallback"] for r in noisy] == [0.0] * 9 + [1.0] * 5
    assert all(r["reliability_model"] < 0.45 for r in noisy[9:])
    assert all(r["reliability"] < 0.45 for r in noisy[:9])
    # the shipped SegmentationUnreliable rule, fed the model's reliability, fires at the frame of the switch
    (rule_config,) = [r for r in load_daemon_config(shipped_config_path()).alerts.rules
                      if r.name == "SegmentationUnreliable"]
    rule = build_rule(rule_config)
    fired = [i for i, r in enumerate(noisy) if rule.observe(
        FrameStats(frame_id=i, time=float(i), aggregates={"reliability": r.get("reliability_model", r["reliability"])}),
        [], float(i))]
    assert fired == [9]


def test_switches_back_when_the_model_recovers_with_hysteresis() -> None:
    images = frames("drowned", 5) + frames("preset-ptychography", 10)
    rows = daemon_run(images, {"segmenter": "watershed", "frames": 3, "recover_frames": 4})
    tags = [r["segmenter_fallback"] for r in rows]
    # off after 3 unreliable frames; back once the model scores >= 0.55 four frames in a row
    assert tags[:5] == [0.0, 0.0, 1.0, 1.0, 1.0]
    back = tags.index(0.0, 5)
    assert 5 + 3 <= back <= 5 + 5 and tags[back:] == [0.0] * (len(tags) - back)


def test_a_model_hovering_at_the_threshold_does_not_flip_flop() -> None:
    class Scripted:
        """A segmenter whose output is scored as scripted: all of the frame's foreground, or nothing."""

        name = "scripted"

        def __init__(self) -> None:
            self.good = True

        def segment(self, image: np.ndarray) -> Any:
            from wirewatch.segment.watershed import WatershedSegmenter

            det = WatershedSegmenter().segment(image)
            return det if self.good else det.__class__(det.boxes[:0], det.scores[:0], det.masks[:0],
                                                        det.image_shape)

    primary = Scripted()
    wrapped = FallbackSegmenter(primary, primary, FallbackConfig(frames=2, recover_frames=2))
    image = frames("preset-ptychography", 1)[0].astype(np.float32) / 255
    seen = []
    for good in [False, False, True, False, True, False, True, True]:
        primary.good = good
        wrapped.segment(image)
        seen.append(wrapped.active)
    # two bad frames switch; alternating good / bad frames never make two good ones in a row
    assert seen == [False, True, True, True, True, True, True, False]
    assert wrapped.switches == 2


def test_change_points_across_a_switch_of_segmenter_are_suspect() -> None:
    monitor = QualityMonitor(QualityConfig())
    for f in range(40):
        monitor.remember(f, {"reliability": 0.9, "segmenter_fallback": float(f >= 20)})
    cp = ChangePoint(frame=20, detected_at=24, statistics=("width_px_mean",), before={}, after={},
                     effect_size=3.0, detector="cusum")
    assert monitor.judge(cp).suspect
    assert not monitor.judge(ChangePoint(frame=33, detected_at=37, statistics=("width_px_mean",), before={},
                                         after={}, effect_size=3.0, detector="cusum")).suspect
