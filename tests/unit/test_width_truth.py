"""bench.width_truth: model masks against true masks, kind by kind, under the width rule and the one before."""

from __future__ import annotations

import numpy as np
import pytest

from wirewatch.bench.width_truth import compare
from wirewatch.stats.accuracy import rectangle_masks


def test_a_stub_and_a_merge_are_told_apart_and_weigh_on_the_rectangle_only() -> None:
    centre = np.array([[60.3, 59.8]])
    a = rectangle_masks(100.0, 6.0, [20.0], centre, 120)[0]
    b = rectangle_masks(100.0, 6.0, [110.0], centre, 120)[0]  # crosses a at right angles
    c = rectangle_masks(60.0, 6.0, [0.0], np.array([[40.2, 105.4]]), 120)[0]  # alone, below
    true = np.stack([a, b, c])
    stub = a | rectangle_masks(20.0, 6.0, [110.0], centre, 120)[0]  # a with 7 px of b each side
    pred = np.stack([stub, a | b, c, np.zeros_like(a)])  # an empty mask is dropped
    frame, wires = compare(pred, true)
    assert frame["count"] == 3 and frame["true_count"] == 3
    kinds = [kind for kind, _, _ in wires]
    assert kinds == ["single crossing", "merged", "single isolated"]
    (_, stub_now, stub_before), (_, merged_now, merged_before), (_, alone_now, alone_before) = wires
    assert stub_before > 6.0 and abs(stub_now) < 1.5  # the rectangle spans the stub; area / length does not
    # a merged X stays wrong either way, less so as mean thickness: two wires' area over its ~74 px side
    assert merged_before > 50.0 and merged_now < 12.0
    assert alone_now == pytest.approx(0.0) and alone_before == pytest.approx(0.0)  # the wire itself
    assert frame["true_width"] == pytest.approx(6.0, abs=0.3) and frame["true_rect"] == pytest.approx(6.0, abs=0.5)
