"""Compose file, Dockerfiles, systemd unit and Kubernetes manifests: parsed and checked for what they must have.

Docker images cannot be built here (no Docker engine on the CI machine): the Dockerfiles are parsed
and checked instruction by instruction instead. ``systemd-analyze verify`` runs when it is installed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.unit.test_deploy_metrics import DEPLOY, ROOT
from wirewatch.config.base import validate
from wirewatch.config.daemon import DaemonConfig, PipelineConfig

COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_CONFIG = ROOT / "config" / "wirewatch-compose.yaml"
K8S = DEPLOY / "k8s"
UNIT = DEPLOY / "systemd" / "wirewatch.service"
GPU_DROPIN = DEPLOY / "systemd" / "wirewatch.service.d" / "gpu.conf"
SHUTDOWN_TIMEOUT_S = PipelineConfig().shutdown_timeout_s


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # safe_load resolves the << merge keys
    return data


def dotenv() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / ".env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR:-default} / ${VAR} substitution."""
    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(3) or ""
        return env.get(name, default)
    return re.sub(r"\$\{(\w+)(:?-([^}]*))?\}", sub, value)


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(number) * units[unit]
    return total


# ------------------------------------------------------------------------------------------ compose


def test_compose_has_the_whole_stack() -> None:
    services = load_compose()["services"]
    assert {"wirewatch", "simulator", "prometheus", "alertmanager", "grafana", "process-control"} <= set(services)
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", f"{name}: restart policy"
        assert "healthcheck" in service, f"{name}: health check"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} must be published on loopback only"


def test_compose_wirewatch_service() -> None:
    compose = load_compose()
    w = compose["services"]["wirewatch"]
    # non-root, hardened
    assert w["user"] == "10001:10001" and w["read_only"] is True and w["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in w["security_opt"]
    assert w["init"] is True
    assert (ROOT / w["build"]["dockerfile"]).is_file() and (DEPLOY / w["build"]["context"]).resolve() == ROOT
    # health check hits /healthz on the daemon's port
    test = " ".join(w["healthcheck"]["test"])
    assert "/healthz" in test and ":9108/" in test
    # SIGTERM drain fits in the grace period
    assert seconds(w["stop_grace_period"]) > SHUTDOWN_TIMEOUT_S
    # config mounted where the command reads it, and it validates as a daemon config
    command = w["command"]
    config_path = command[command.index("--config") + 1]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in w["volumes"]}
    assert (DEPLOY / mounts[config_path]).resolve() == COMPOSE_CONFIG
    cfg = validate(DaemonConfig, yaml.safe_load(COMPOSE_CONFIG.read_text()), str(COMPOSE_CONFIG))
    # the record lives on the named volume
    assert cfg.record.path is not None
    record_dir = str(PurePosixPath(cfg.record.path).parent)
    assert mounts[record_dir] in compose["volumes"]
    assert cfg.http.host == "0.0.0.0" and f"127.0.0.1:{cfg.http.port}:{cfg.http.port}" in w["ports"]
    assert "alertmanager:9093" in cfg.alerts.sinks[0].url


def test_simulator_by_default_a_detector_by_one_setting() -> None:
    compose = load_compose()
    w = compose["services"]["wirewatch"]
    env = dotenv()
    endpoint = interpolate(w["environment"]["WIREWATCH_INGEST__ENDPOINT"], env)
    sim = compose["services"]["simulator"]["command"]
    sim_port = sim[sim.index("--endpoint") + 1].rsplit(":", 1)[1]
    assert endpoint == f"tcp://simulator:{sim_port}"
    assert interpolate(w["environment"]["WIREWATCH_INGEST__ENDPOINT"], {}) == endpoint  # same default without .env
    # one line in .env switches to a real detector
    assert interpolate(w["environment"]["WIREWATCH_INGEST__ENDPOINT"],
                       {**env, "WIREWATCH_INPUT": "tcp://dcu:31001"}) == "tcp://dcu:31001"
    # and the daemon config takes the endpoint from that variable (env beats the file)
    from wirewatch.config.daemon import load_daemon_config

    cfg = load_daemon_config(COMPOSE_CONFIG, environ={"WIREWATCH_INGEST__ENDPOINT": "tcp://dcu:31001"})
    assert cfg.ingest.endpoint == "tcp://dcu:31001" and cfg.ingest.socket == "pull" and not cfg.ingest.bind
    # the simulator speaks what the daemon expects, from a scenario shipped in the image
    assert sim[sim.index("--format") + 1] == cfg.ingest.format
    scenario = sim[sim.index("--scenario") + 1]
    assert scenario.startswith("/etc/wirewatch/")
    assert (ROOT / "config" / Path(scenario).relative_to("/etc/wirewatch")).is_file()


def test_compose_bind_mounts_exist_and_volumes_are_declared() -> None:
    compose = load_compose()
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"


def test_compose_gpu_override_requests_a_gpu() -> None:
    gpu = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())["services"]["wirewatch"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu["build"]["dockerfile"] == "deploy/docker/Dockerfile.gpu"


# ------------------------------------------------------------------------------------------ Dockerfiles


def dockerfile_stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions (KEYWORD, arguments) per build stage, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") and not pending.strip():
            continue
        if raw.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line:
            lines.append(line)
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args.strip()))
        else:
            assert keyword == "ARG", f"{path.name}: {keyword} before FROM"
    return stages


def pip_installs(stages: list[list[tuple[str, str]]]) -> list[list[str]]:
    """The arguments of every ``pip install`` in RUN instructions."""
    out = []
    for stage in stages:
        for keyword, args in stage:
            if keyword != "RUN":
                continue
            for part in args.split("&&"):
                words = shlex.split(part)
                for i, word in enumerate(words):
                    if word.endswith("pip") and words[i + 1:i + 2] == ["install"]:
                        out.append(words[i + 2:])
    return out


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfile_runtime_stage(name: str) -> None:
    stages = dockerfile_stages(DEPLOY / "docker" / name)
    assert len(stages) == 2, "a build stage and a slim runtime stage"
    runtime = dict(stages[-1])
    keywords = [k for k, _ in stages[-1]]
    user = runtime["USER"].split(":")[0]
    assert user not in ("root", "0") and int(user) >= 1000, "runs as an unprivileged user"
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN"), "USER after the last RUN"
    health = runtime["HEALTHCHECK"]
    assert "/healthz" in health and "--start-period=" in health and "CMD" in health
    assert '"wirewatch"' in runtime["ENTRYPOINT"]
    assert "9108" in runtime["EXPOSE"].split()
    assert "/var/lib/wirewatch" in runtime["VOLUME"]
    assert "WIREWATCH_HTTP__HOST=0.0.0.0" in runtime["ENV"]
    # everything copied from the context exists in the repository and survives the .dockerignore
    ignore = (DEPLOY / "docker" / f"{name}.dockerignore").read_text().split()
    for stage in stages:
        for keyword, args in stage:
            if keyword == "COPY" and not args.startswith("--from"):
                for source in args.split()[:-1]:
                    assert (ROOT / source).exists(), f"{name}: COPY {source} missing"
                    assert f"!{source.rstrip('/')}" in {i.rstrip("/") for i in ignore}, f"{name}: {source} ignored"


def test_cpu_image_installs_no_torch() -> None:
    installs = pip_installs(dockerfile_stages(DEPLOY / "docker" / "Dockerfile.cpu"))
    assert installs, "the CPU image installs the package with pip"
    for args in installs:
        joined = " ".join(args)
        assert "torch" not in joined and "[train" not in joined and "[gpu" not in joined, joined
    assert [".[cpu,plots]"] in installs  # the runtime dependencies, the CPU onnxruntime and the figures
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime_deps = project["dependencies"]
    assert not [d for d in runtime_deps if re.match(r"torch", d)], "runtime dependencies must not pull torch"
    assert any(d.startswith("onnxruntime>") for d in project["optional-dependencies"]["cpu"])
    base = dockerfile_stages(DEPLOY / "docker" / "Dockerfile.cpu")
    assert all(args == "${PYTHON_IMAGE} AS build" or args == "${PYTHON_IMAGE} AS runtime"
               for stage in base for k, args in stage if k == "FROM")
    assert "slim" in (DEPLOY / "docker" / "Dockerfile.cpu").read_text().split("ARG PYTHON_IMAGE=")[1].split()[0]


def test_the_gpu_extra_does_not_pull_the_cpu_onnxruntime() -> None:
    """onnxruntime and onnxruntime-gpu install the same module: the CPU one is the cpu extra, never a runtime
    dependency, so installing the gpu extra gives onnxruntime-gpu alone."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}

    assert "onnxruntime" not in names(project["dependencies"])
    assert "onnxruntime" not in names(extras["gpu"]) and "onnxruntime-gpu" in names(extras["gpu"])
    assert names(extras["cpu"]) == {"onnxruntime"}
    assert "matplotlib" not in names(project["dependencies"]) and names(extras["plots"]) == {"matplotlib"}
    # CI installs .[train,dev]: dev brings the CPU runtime and the figures the tests need
    assert "wirewatch[cpu,plots]" in extras["dev"]


def test_gpu_image_uses_cuda_and_onnxruntime_gpu() -> None:
    text = (DEPLOY / "docker" / "Dockerfile.gpu").read_text()
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:12\.\S+-cudnn-runtime", text)
    installs = [" ".join(a) for a in pip_installs(dockerfile_stages(DEPLOY / "docker" / "Dockerfile.gpu"))]
    assert any(a.startswith(".[gpu,plots]") for a in installs)
    assert any("onnxruntime-gpu" in a for a in installs)
    assert not any("[cpu" in a or "uninstall" in a for a in installs), "the CPU onnxruntime is never installed"
    assert not any("torch" in a for a in installs)
    assert "TensorrtExecutionProvider" in text and "tensorrt_libs" in text


# ------------------------------------------------------------------------------------------ systemd


def unit_entries(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Section -> [(key, value)], keeping repeated keys (systemd allows them)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {key} outside a section"
        sections[current].append((key.strip(), value.strip()))
    return sections


def test_systemd_unit_restart_and_sandboxing() -> None:
    entries = unit_entries(UNIT)
    service = dict(entries["Service"])
    assert service["Restart"] == "on-failure" and seconds(service["RestartSec"]) >= 1
    assert "StartLimitBurst" in dict(entries["Unit"])
    assert service.get("DynamicUser") == "yes" or service.get("User") not in (None, "root")
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "PrivateDevices": "yes", "RestrictSUIDSGID": "yes",
                       "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes"}.items():
        assert service.get(key) == value, f"{key}={service.get(key)}"
    assert service["CapabilityBoundingSet"] == ""
    assert service["StateDirectory"] == "wirewatch"
    assert "/var/lib/wirewatch" in service["ReadWritePaths"].split()
    assert service["KillSignal"] == "SIGTERM" and seconds(service["TimeoutStopSec"]) > SHUTDOWN_TIMEOUT_S
    exec_start = shlex.split(service["ExecStart"])
    assert exec_start[0].endswith("/wirewatch") and exec_start[1] == "run"
    config = exec_start[exec_start.index("--config") + 1]
    assert config.startswith("/etc/wirewatch/")
    assert dict(entries["Install"])["WantedBy"] == "multi-user.target"
    filters = [v for k, v in entries["Service"] if k == "SystemCallFilter"]
    assert "@system-service" in filters


def test_systemd_record_path_of_the_example_config_is_writable() -> None:
    cfg = yaml.safe_load((ROOT / "config" / "stream2-example.yaml").read_text())
    writable = dict(unit_entries(UNIT)["Service"])["ReadWritePaths"].split()
    assert any(cfg["record"]["path"].startswith(p + "/") for p in writable)


def test_systemd_gpu_dropin_opens_only_nvidia_devices() -> None:
    service = unit_entries(GPU_DROPIN)["Service"]
    assert ("PrivateDevices", "no") in service and ("DevicePolicy", "closed") in service
    allowed = [v for k, v in service if k == "DeviceAllow"]
    assert allowed and all(v.split()[0].startswith("char-nvidia") for v in allowed)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit (and the GPU drop-in) load without a single warning; ExecStart is pointed at this
    checkout's wirewatch because verify checks that the binary exists."""
    wirewatch = Path(shutil.which("wirewatch") or ROOT / ".venv" / "bin" / "wirewatch")
    if not wirewatch.exists():
        pytest.skip("no wirewatch executable to point ExecStart at")
    text = UNIT.read_text().replace("/opt/wirewatch/bin/wirewatch", str(wirewatch))
    (tmp_path / "wirewatch.service").write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "./wirewatch.service"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    (tmp_path / "wirewatch.service.d").mkdir()
    shutil.copy(GPU_DROPIN, tmp_path / "wirewatch.service.d" / "gpu.conf")
    result = subprocess.run(["systemd-analyze", "verify", "wirewatch.service"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    # and verify does catch a typo
    (tmp_path / "wirewatch.service").write_text(text.replace("ProtectSystem=strict", "ProtectSystem=stric"))
    result = subprocess.run(["systemd-analyze", "verify", "./wirewatch.service"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert "stric" in result.stdout + result.stderr


# ------------------------------------------------------------------------------------------ Kubernetes


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["metadata"]["name"], path.name
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def test_kustomization_lists_the_core_manifests() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / r).is_file() for r in kust["resources"])
    assert set(kust["resources"]) == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml",
                                                                              "servicemonitor.yaml"}


def test_k8s_deployment() -> None:
    objects = k8s_objects()
    deployment = objects[("Deployment", "wirewatch")]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    podspec = pod["spec"]
    assert podspec["securityContext"]["runAsNonRoot"] is True and podspec["securityContext"]["runAsUser"] >= 1000
    assert podspec["terminationGracePeriodSeconds"] > SHUTDOWN_TIMEOUT_S
    (container,) = podspec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1 and resources["requests"]["nvidia.com/gpu"] == 1
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        command = container[probe]["exec"]["command"]  # httpGet cannot send the token from a Secret
        assert command[:2] == ["python", "-c"] and f"127.0.0.1:{ports['metrics']}{path}'" in command[2], probe
    # the config file the container reads comes from the ConfigMap, and validates
    config_path = container["args"][container["args"].index("--config") + 1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in podspec["volumes"]}
    config_volume = volumes[mounts[str(PurePosixPath(config_path).parent)]]
    configmap = objects[("ConfigMap", config_volume["configMap"]["name"])]
    cfg = validate(DaemonConfig, yaml.safe_load(configmap["data"][PurePosixPath(config_path).name]), "configmap")
    assert cfg.http.host == "0.0.0.0" and cfg.http.port == ports["metrics"]
    # the HTTP token comes from a Secret mounted where the config reads it, and the probes send it
    assert cfg.http.bearer_token_file is not None
    token_path = PurePosixPath(cfg.http.bearer_token_file)
    token_volume = volumes[mounts[str(token_path.parent)]]
    assert token_volume["secret"]["secretName"] == "wirewatch-http-token"
    assert token_volume["secret"].get("optional") is not True  # no Secret, no pod: never an open port
    assert {"key": "token", "path": token_path.name} in token_volume["secret"]["items"]
    assert token_volume["secret"]["defaultMode"] & 0o007 == 0  # nobody but owner and group
    assert all(f"open('{token_path}')" in container[p]["exec"]["command"][2]
               for p in ("livenessProbe", "readinessProbe", "startupProbe"))
    assert not any(o["kind"] == "Secret" for o in objects.values())  # never a token in git
    # behind the TLS ingress: its public name and origin allowed, the session cookie Secure, no wildcard host
    assert "*" not in cfg.http.allowed_hosts and cfg.http.secure_cookie
    assert all(o.startswith("https://") for o in cfg.http.allowed_origins)
    # the ZeroMQ PUB: loopback, or CURVE with an exposed port
    assert cfg.publish.zmq is not None
    if cfg.publish.zmq.curve is None:
        assert cfg.publish.zmq.bind.startswith("tcp://127.0.0.1:"), "a PUB without CURVE must bind loopback"
        assert "zmq-pub" not in ports
    # the record goes to the persistent volume
    assert cfg.record.path is not None
    record_volume = volumes[mounts[str(PurePosixPath(cfg.record.path).parent)]]
    claim = record_volume["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in objects


def test_k8s_service_and_servicemonitor_match_the_pod() -> None:
    objects = k8s_objects()
    pod = objects[("Deployment", "wirewatch")]["spec"]["template"]
    port_names = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
    service = objects[("Service", "wirewatch")]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    monitor = objects[("ServiceMonitor", "wirewatch")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    relabel = monitor["spec"]["endpoints"][0]["relabelings"][0]
    assert relabel == {"targetLabel": "job", "replacement": "wirewatch"}  # what the alert rules select
    namespaces = {o["metadata"].get("namespace") for o in objects.values() if o["kind"] != "Namespace"}
    assert namespaces == {"wirewatch"}


def test_k8s_networkpolicy_admits_only_the_scraper_and_the_ingress() -> None:
    objects = k8s_objects()
    policy = objects[("NetworkPolicy", "wirewatch")]
    pod = objects[("Deployment", "wirewatch")]["spec"]["template"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert "Ingress" in policy["spec"]["policyTypes"]
    rules = policy["spec"]["ingress"]
    assert len(rules) == 2
    port_names = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
    admitted = []
    for rule in rules:
        # never an allow-all: every rule names its peers, and each peer both a namespace and its pods
        assert rule.get("from"), rule
        for peer in rule["from"]:
            assert peer["namespaceSelector"]["matchLabels"] and peer["podSelector"]["matchLabels"], peer
            admitted.append(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
        assert [p["port"] for p in rule["ports"]] == ["metrics"] and "metrics" in port_names
    assert sorted(admitted) == ["ingress-nginx", "prometheus"]


def test_k8s_servicemonitor_sends_the_token() -> None:
    monitor = k8s_objects()[("ServiceMonitor", "wirewatch")]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": "wirewatch-http-token",
                                                                         "key": "token"}}

