"""The Kubernetes probes' commands (deploy/k8s/deployment.yaml), run as written against a real daemon that
requires a bearer token (issue 39): they pass with the token from the Secret's file, fail without it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.unit.test_deploy_manifests import k8s_objects
from wirewatch.config.daemon import DaemonConfig
from wirewatch.daemon.service import Daemon


def test_k8s_probe_commands_work_against_a_daemon_with_a_token(tmp_path: Path) -> None:
    """The probes' Python, run as written (path and port swapped for the test's), against a real daemon."""
    token_file = tmp_path / "token"
    token_file.write_text("k8s-probe-token-0123456789\n")
    token_file.chmod(0o600)
    container = k8s_objects()[("Deployment", "wirewatch")]["spec"]["template"]["spec"]["containers"][0]
    cfg = DaemonConfig.model_validate({"ingest": {"endpoint": "tcp://127.0.0.1:1"}, "segment": {"backend": "watershed"},
                                       "publish": {"zmq": None},
                                       "http": {"port": 0, "bearer_token_file": str(token_file)}})
    daemon = Daemon(cfg).start()
    try:
        assert daemon.http is not None
        for probe in ("livenessProbe", "readinessProbe"):
            code = container[probe]["exec"]["command"][2]
            code = code.replace("/etc/wirewatch/secrets/token", str(token_file)).replace(
                "127.0.0.1:9108", f"127.0.0.1:{daemon.http.port}")
            for _ in range(40):  # /readyz turns 200 once the pipeline runs
                result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
                if result.returncode == 0:
                    break
                time.sleep(0.25)
            assert result.returncode == 0, (probe, result.stderr[-500:])
        token_file.write_text("a-wrong-token-0123456789\n")  # the probe fails without the right token
        code = container["livenessProbe"]["exec"]["command"][2].replace(
            "/etc/wirewatch/secrets/token", str(token_file)).replace("127.0.0.1:9108", f"127.0.0.1:{daemon.http.port}")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
        assert result.returncode != 0 and "401" in result.stderr
    finally:
        daemon.stop()
        daemon.wait(20)
