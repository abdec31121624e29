"""deploy/k8s/ray: the KubeRay RayService's Serve config is valid for the installed Ray and builds the
segmenter application; the daemon's config is a valid daemon config pointing at the cluster."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

from wirewatch.config.base import validate
from wirewatch.config.daemon import DaemonConfig
from wirewatch.segment.ray_backend import DEPLOYMENT_NAME, RaySegmenter, build_app

RAY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "ray"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((RAY_DIR / name).read_text()) if d]


def test_kustomization_lists_every_manifest() -> None:
    (kust,) = docs("kustomization.yaml")
    assert sorted(kust["resources"]) == sorted(p.name for p in RAY_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def test_rayservice_serve_config_is_valid_and_builds_the_gpu_application() -> None:
    pytest.importorskip("ray.serve")
    from ray.serve.schema import ServeDeploySchema

    (service,) = docs("rayservice.yaml")
    assert service["kind"] == "RayService"
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    schema = ServeDeploySchema.model_validate(serve_config) if hasattr(ServeDeploySchema, "model_validate") \
        else ServeDeploySchema.parse_obj(serve_config)
    (app_cfg,) = schema.applications
    assert app_cfg.import_path == "wirewatch.segment.ray_backend:build_app"
    app = build_app(app_cfg.args)
    deployment = app._bound_deployment
    assert deployment.name == DEPLOYMENT_NAME
    assert deployment.ray_actor_options["num_gpus"] == 0.5
    assert deployment._deployment_config.autoscaling_config.min_replicas == 2
    assert deployment._deployment_config.autoscaling_config.max_replicas == 8
    # GPU workers: every worker group asks the GPUs it advertises to Ray
    cluster = service["spec"]["rayClusterConfig"]
    for group in cluster["workerGroupSpecs"]:
        (container,) = group["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == int(group["rayStartParams"]["num-gpus"])
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no replica on the head


def test_daemon_points_at_the_cluster_with_options_the_backend_takes() -> None:
    (service,) = docs("rayservice.yaml")
    config_map, deployment, _pvc = docs("daemon.yaml")
    cfg = validate(DaemonConfig, yaml.safe_load(config_map["data"]["wirewatch.yaml"]))
    assert cfg.segment.backend == "ray" and cfg.segment.options["address"] == "auto"
    accepted = set(inspect.signature(RaySegmenter).parameters)
    assert set(cfg.segment.options) <= accepted
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command = " ".join(container["args"])
    assert f"--address={service['metadata']['name']}-head-svc:6379" in command  # KubeRay's head Service
    assert "exec wirewatch run" in command
    env = {e["name"] for e in container["env"]}
    assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} <= env  # the cluster's token (a Secret, never in git)
