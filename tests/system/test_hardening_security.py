"""Security of a running daemon: CURVE on the frame input and the result output with keys made by
``wirewatch keys generate``, HTTP on loopback by default, bearer token, secrets never logged, warnings
for config and key files other users can read. Real sockets on loopback throughout."""

from __future__ import annotations

import contextlib
import logging
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from wirewatch.cli.app import app
from wirewatch.config.daemon import DaemonConfig, load_daemon_config, shipped_config_path
from wirewatch.daemon.service import Daemon
from wirewatch.ingest import encode_array10
from wirewatch.security import RedactingFilter, check_file_permissions, install_log_redaction, redact
from wirewatch.web.config import HttpConfig
from wirewatch.web.server import HttpServer

from .helpers import bind_push, daemon_config, rods, wait_for

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")


def generate(folder: Path, name: str) -> tuple[Path, Path]:
    """``wirewatch keys generate NAME --dir FOLDER`` through the real CLI entry (typer)."""
    result = CliRunner().invoke(app, ["keys", "generate", name, "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    return folder / f"{name}.key", folder / f"{name}.key_secret"


def z85_secret(path: Path) -> str:
    _, secret = zmq.auth.load_certificate(path)
    assert secret is not None
    return secret.decode()


def get(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as err:
        return err.code


def test_keys_generate_writes_a_private_secret_and_refuses_to_overwrite(tmp_path: Path) -> None:
    public, secret = generate(tmp_path / "keys", "daemon")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    pub_key, sec_key = zmq.auth.load_certificate(secret)
    assert zmq.auth.load_certificate(public) == (pub_key, None) and sec_key is not None and len(sec_key) == 40
    again = CliRunner().invoke(app, ["keys", "generate", "daemon", "--dir", str(tmp_path / "keys")])
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    assert zmq.auth.load_certificate(secret) == (pub_key, sec_key)  # untouched
    bad = CliRunner().invoke(app, ["keys", "generate", "../escape", "--dir", str(tmp_path / "keys")])
    assert bad.exit_code != 0 and not (tmp_path / "escape.key").exists()


def _curve_daemon(tmp_path: Path, ctx: zmq.Context, key_mode: int | None = None,
                  **extra: Any) -> tuple[Daemon, zmq.Socket, dict[str, Any]]:
    """A daemon whose input connects to a CURVE PUSH server (the detector) and whose PUB output is a
    CURVE server accepting only the ``viewer`` certificate; every key made by ``wirewatch keys``."""
    keys = tmp_path / "keys"
    k = {name: generate(keys, name) for name in ("detector", "daemon", "publisher", "viewer", "stranger")}
    if key_mode is not None:
        for _, secret in k.values():
            secret.chmod(key_mode)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "viewer.key").write_bytes(k["viewer"][0].read_bytes())
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.curve_publickey, push.curve_secretkey = zmq.auth.load_certificate(k["detector"][1])
    push.curve_server = True
    push.bind("tcp://127.0.0.1:*")
    cfg = DaemonConfig.model_validate({
        "ingest": {"endpoint": push.getsockopt_string(zmq.LAST_ENDPOINT), "format": "array-1.0",
                   "policy": "queue",
                   "curve": {"secret_file": str(k["daemon"][1]), "server_public_file": str(k["detector"][0])}},
        "segment": {"backend": "watershed"},
        "changepoint": {"enabled": False},
        "publish": {"zmq": {"bind": "tcp://127.0.0.1:*",
                            "curve": {"server_secret_file": str(k["publisher"][1]),
                                      "authorized_clients_dir": str(allowed)}}},
        "alerts": extra.pop("alerts", {}),
        "http": {"port": 0, **extra.pop("http", {})},
        **extra,
    })
    return Daemon(cfg, zmq_context=ctx), push, k


def _sub(ctx: zmq.Context, endpoint: str, server_public: Path, client_secret: Path | None) -> zmq.Socket:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if client_secret is not None:
        sub.curve_publickey, sub.curve_secretkey = zmq.auth.load_certificate(client_secret)
        sub.curve_serverkey = zmq.auth.load_certificate(server_public)[0]
    sub.setsockopt(zmq.SUBSCRIBE, b"stats")
    sub.connect(endpoint)
    return sub


def test_curve_on_input_and_output_through_the_daemon(tmp_path: Path, ctx: zmq.Context) -> None:
    """Frames reach the daemon only over CURVE; its stats reach the authorised viewer only: a stranger
    with a valid keypair and a plaintext subscriber receive nothing."""
    daemon, push, k = _curve_daemon(tmp_path, ctx)
    daemon.start()
    subs: dict[str, zmq.Socket] = {}
    try:
        endpoint = daemon.built.publisher.zmq.endpoint
        subs = {"viewer": _sub(ctx, endpoint, k["publisher"][0], k["viewer"][1]),
                "stranger": _sub(ctx, endpoint, k["publisher"][0], k["stranger"][1]),
                "plaintext": _sub(ctx, endpoint, k["publisher"][0], None)}
        got = {name: 0 for name in subs}
        sent = 0
        deadline = time.monotonic() + 30
        while got["viewer"] < 3 and time.monotonic() < deadline:
            if sent < 20:  # a SUB joining late misses the first messages: keep sending a little
                push.send_multipart(encode_array10(sent, rods(sent)))
                sent += 1
            for name, sub in subs.items():
                while sub.poll(0):
                    topic, _body = sub.recv_multipart()
                    assert topic == b"stats"
                    got[name] += 1
            time.sleep(0.1)
        wait_for(lambda: daemon.pipeline.processed == sent)
    finally:
        for sub in subs.values():
            sub.close()
        daemon.close()
        push.close(0)
    assert got["viewer"] >= 3 and got["stranger"] == 0 and got["plaintext"] == 0, got


def test_plaintext_sender_cannot_feed_a_curve_daemon(tmp_path: Path, ctx: zmq.Context) -> None:
    daemon, curve_push, _ = _curve_daemon(tmp_path, ctx)
    curve_push.close(0)
    endpoint = daemon.config.ingest.endpoint
    plain = bind_push(ctx, endpoint)  # an impostor on the detector's address, without the detector's key
    daemon.start()
    try:
        for i in range(5):
            with contextlib.suppress(zmq.Again):  # no handshake completed: nothing connected to send to
                plain.send_multipart(encode_array10(i, rods(i)), zmq.NOBLOCK)
        time.sleep(2.0)
        assert daemon.pipeline.processed == 0
        assert daemon.pipeline.source.stats().received == 0
    finally:
        daemon.close()
        plain.close(0)


def test_http_binds_loopback_by_default() -> None:
    assert HttpConfig().host == "127.0.0.1"
    assert load_daemon_config(shipped_config_path(), environ={}).http.host == "127.0.0.1"
    cfg = daemon_config("tcp://127.0.0.1:1", alerts={"enabled": False})
    daemon = Daemon(cfg).start()
    try:
        assert daemon.http is not None and daemon.http.host == "127.0.0.1"
        assert get(daemon.http.url + "/healthz") == 200
    finally:
        daemon.close()
    server = HttpServer(CollectorRegistry())
    try:
        assert server.host == "127.0.0.1"
    finally:
        server.close()


def test_secrets_are_never_logged(tmp_path: Path, ctx: zmq.Context, caplog: pytest.LogCaptureFixture,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon with every secret wirewatch knows (HTTP bearer token, webhook HMAC key and bearer token,
    CURVE secret keys in and out) runs at DEBUG level through good and bad requests, an unreachable
    webhook receiver (retries logged) and shutdown: no secret appears in any log line."""
    caplog.set_level(logging.DEBUG)
    token, hmac_key, webhook_token = "http-token-9f8e7d6c5b4a", "hmac-key-1a2b3c4d5e6f", "hook-token-0a9b8c7d"
    token_file = tmp_path / "http.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    hmac_file = tmp_path / "hmac.key"
    hmac_file.write_text(hmac_key)
    hmac_file.chmod(0o600)
    monkeypatch.setenv("HOOK_TOKEN", webhook_token)
    with socket_on_a_closed_port() as dead_url:
        daemon, push, k = _curve_daemon(
            tmp_path, ctx, http={"bearer_token_file": str(token_file)},
            alerts={"rules": [{"kind": "threshold", "name": "TooFew", "statistic": "particle_count", "min": 100}],
                    "sinks": [{"type": "webhook", "url": dead_url, "spool_dir": str(tmp_path / "spool"),
                               "hmac_secret": {"file": str(hmac_file)}, "bearer_token": {"env": "HOOK_TOKEN"},
                               "backoff_initial_s": 0.05, "timeout_s": 0.5}]})
        daemon.start()
        try:
            for i in range(5):
                push.send_multipart(encode_array10(i, rods(i)))
            wait_for(lambda: daemon.pipeline.processed == 5)
            url = daemon.http.url  # type: ignore[union-attr]
            assert get(url + "/metrics") == 401
            assert get(url + "/metrics", token="wrong-" + token) == 401
            assert get(url + "/metrics", token=token) == 200
            assert get(url + "/healthz", token=token) == 200
            assert get(url + "/readyz?token=" + token) == 401  # tokens in URLs are not accepted here
            time.sleep(1.0)  # the webhook sink tries the dead receiver and logs its failures
        finally:
            daemon.close()
            push.close(0)
    text = caplog.text + "".join(str(r.exc_info) for r in caplog.records if r.exc_info)
    assert "TooFew" in text or "webhook" in text  # the alert path really ran and logged
    secrets = {"http token": token, "hmac key": hmac_key, "webhook token": webhook_token,
               **{f"curve {name}": z85_secret(k[name][1]) for name in ("daemon", "publisher")}}
    for what, value in secrets.items():
        assert value not in text, f"{what} leaked into the log"
    spooled = "".join(p.read_text(errors="replace") for p in (tmp_path / "spool").rglob("*") if p.is_file())
    assert "TooFew" in spooled  # the alert fired and waits in the spool for the dead receiver
    assert hmac_key not in spooled and webhook_token not in spooled


class socket_on_a_closed_port:
    """An http:// URL on a loopback port nobody listens on (bound then released)."""

    def __enter__(self) -> str:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return f"http://127.0.0.1:{port}/hook"

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_token_in_a_url_is_masked_in_the_cli_log(caplog: pytest.LogCaptureFixture) -> None:
    """A token in a URL is refused (401: browsers log in with the ``POST /login`` form), but a client may
    still send one and the DEBUG request log would carry it: the CLI's log redaction (installed by the root
    command) masks it."""
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(app, ["-v", "keys", "--help"])  # runs the root callback, as every command
    assert result.exit_code == 0
    assert any(isinstance(f, RedactingFilter) for h in logging.getLogger().handlers for f in h.filters)
    install_log_redaction()  # idempotent; makes sure the capture handler of this test has it too
    token = "web-token-5e6f7a8b9c0d"
    server = HttpServer(CollectorRegistry(), bearer_token=token)
    try:
        req = urllib.request.Request(server.url + "/?token=" + token)
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(req, timeout=5)
        logging.getLogger("wirewatch.test").info("Authorization: Bearer %s", token)
    finally:
        server.close()
    assert token not in caplog.text
    assert "token=***" in caplog.text and "Bearer ***" in caplog.text


def test_redact_masks_token_parameters_and_registered_secrets() -> None:
    from wirewatch.security import register_secret

    register_secret("registered-value-77aa")
    assert redact("GET /live?token=abc123&x=1 HTTP/1.1") == "GET /live?token=***&x=1 HTTP/1.1"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redact("hmac_secret=s3cr3t password=pw") == "hmac_secret=*** password=***"
    assert redact("key is registered-value-77aa.") == "key is ***."
    assert redact("frame 12 took 0.3 s") == "frame 12 took 0.3 s"


def test_config_and_key_files_readable_by_others_are_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                            ctx: zmq.Context) -> None:
    caplog.set_level(logging.WARNING)
    secret_text = "do-not-print-this-0123"
    cfg = tmp_path / "wirewatch.yaml"
    cfg.write_text(f"# {secret_text}\nnot_a_section: 1\n")
    for mode, expected in ((0o644, ["readable by other users"]), (0o640, []), (0o600, []),
                           (0o660, ["writable by group or others"])):
        cfg.chmod(mode)
        assert check_file_permissions(cfg, "config file", secret=False) == expected
    key = tmp_path / "k.key_secret"
    key.write_text(secret_text)
    for mode, expected in ((0o600, []), (0o640, ["readable by group or others"]),
                           (0o644, ["readable by group or others"])):
        key.chmod(mode)
        assert check_file_permissions(key, "key", secret=True) == expected
    assert check_file_permissions(tmp_path / "missing", "key", secret=True) == []
    # through `wirewatch run --config`: the warning comes before the config error
    cfg.chmod(0o644)
    caplog.clear()
    result = CliRunner().invoke(app, ["run", "--config", str(cfg)])
    assert result.exit_code != 0 and "not_a_section" in str(result.exception)
    assert f"config file {cfg} is readable by other users" in caplog.text
    # the daemon's own secret files: HTTP token and CURVE secret keys readable by others are warned about
    caplog.clear()
    token_file = tmp_path / "http.token"
    token_file.write_text(secret_text)
    token_file.chmod(0o644)
    daemon, push, k = _curve_daemon(tmp_path, ctx, key_mode=0o644, http={"bearer_token_file": str(token_file)})
    try:
        daemon.start()
    finally:
        daemon.close()
        push.close(0)
    assert "http.bearer_token_file" in caplog.text
    assert str(k["daemon"][1]) in caplog.text and str(k["publisher"][1]) in caplog.text
    for value in (secret_text, z85_secret(k["daemon"][1]), z85_secret(k["publisher"][1])):
        assert value not in caplog.text


def test_cli_log_handler_on_stderr_masks_tokens() -> None:
    """In a real process the root command's ``logging.basicConfig`` handler (stderr) gets the redaction."""
    import subprocess
    import sys

    code = ("import logging, sys\n"
            "from wirewatch.cli.app import app\n"
            "try:\n"
            "    app(['-v', 'keys', 'generate', '--help'], standalone_mode=False)\n"
            "except SystemExit:\n"
            "    pass\n"
            "logging.getLogger('wirewatch.x').info('GET /live?token=tok-123456 HTTP/1.1 Authorization: Bearer b-654321')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "tok-123456" not in proc.stderr and "b-654321" not in proc.stderr
    assert "token=*** HTTP/1.1 Authorization: Bearer ***" in proc.stderr
