"""Whatever a stream throws at it, the detector keeps going and its events stay well-formed."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wirewatch.changepoint import ChangepointConfig, build_detector

STATS = ["a", "b"]
_DETECTOR = build_detector(ChangepointConfig(stats=STATS, warmup=5, windowed={"window": 30, "min_segment": 3,
                                                                               "every": 2}))

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.none(), st.booleans(), st.text(max_size=3),
    st.sampled_from([0.0, 1.0, 1e308, -1e308, 5e-324]),
)
frames = st.lists(st.dictionaries(st.sampled_from([*STATS, "other"]), values, max_size=3), min_size=1, max_size=120)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames, st.integers(min_value=-5, max_value=5))
def test_any_stream_is_handled(rows: list[dict], step: int) -> None:
    detector = _DETECTOR
    detector.reset()
    frame = 0
    for row in rows:
        frame += step  # also backwards and repeated frame ids (a new series each time)
        for cp in detector.update(frame, row):
            assert cp.frame <= cp.detected_at
            assert cp.statistics and set(cp.statistics) <= set(STATS)
            assert set(cp.before) == set(cp.after) == set(cp.statistics)
            assert math.isfinite(cp.effect_size) and cp.effect_size >= 0
            assert cp.severity in {"info", "warning", "critical"}
