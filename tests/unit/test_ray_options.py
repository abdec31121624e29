"""``segment.backend: ray`` options: bad values are refused with an error naming the option, before any
Ray process is started."""

from __future__ import annotations

import pytest

from wirewatch.errors import InputError
from wirewatch.segment import load_segmenter
from wirewatch.segment.ray_backend import deployment_options, inner_options

pytest.importorskip("ray")


@pytest.mark.parametrize(("options", "message"), [
    ({"replicas": 0}, "replicas must be a positive integer"),
    ({"replicas": 1.5}, "replicas must be a positive integer"),
    ({"threads": "many"}, "threads must be a number"),
    ({"num_gpus": -0.5}, "num_gpus must be a non-negative number"),
    ({"inner": "pytorch"}, "unknown inner segmenter 'pytorch'"),
    ({"replicas": 2, "max_replicas": 4}, "either replicas or min_replicas/max_replicas"),
    ({"min_replicas": 3, "max_replicas": 2}, "min_replicas 3 > max_replicas 2"),
    ({"max_in_flight": 0}, "max_in_flight must be a positive integer"),
])
def test_bad_options_are_refused_by_name(options: dict[str, object], message: str) -> None:
    import ray

    with pytest.raises(InputError, match=message):
        load_segmenter("ray", **options)
    assert not ray.is_initialized()  # refused before starting anything


def test_replica_resources_and_replica_counts() -> None:
    fixed = deployment_options(replicas=3, min_replicas=None, max_replicas=None, threads=2, num_gpus=0.5)
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert fixed["ray_actor_options"] == {"num_cpus": 2.0, "num_gpus": 0.5}
    auto = deployment_options(replicas=None, min_replicas=0, max_replicas=6, threads=1, num_gpus=0)
    assert auto["autoscaling_config"]["min_replicas"] == 0 and auto["autoscaling_config"]["max_replicas"] == 6
    assert "num_replicas" not in auto
    # the segmenter inside: onnxruntime gets the model and its threads, watershed neither
    assert inner_options("onnxruntime", "default", 2, {"views": 2}) == {"views": 2, "model": "default", "threads": 2}
    assert inner_options("watershed", "default", 2, {}) == {}


def test_replicas_of_the_watershed_baseline_get_frames_as_given() -> None:
    from wirewatch.segment.scale import split_scale_options

    runtime, rest = split_scale_options("ray", {"inner": "watershed", "replicas": 2})
    assert runtime.scale is None and runtime.polarity == "bright" and rest == {"inner": "watershed", "replicas": 2}
    runtime, _ = split_scale_options("ray", {"replicas": 2})  # model replicas: as the in-process model backend
    assert runtime.scale == "auto" and runtime.polarity == "auto"
