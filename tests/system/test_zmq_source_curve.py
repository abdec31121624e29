"""CURVE on the frame input: encrypted, authenticated streams over real loopback sockets."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
import zmq.auth

from wirewatch.errors import ConfigError
from wirewatch.ingest import IngestConfig, ZmqSource, make_decoder
from wirewatch.ingest import encode as enc
from wirewatch.ingest.config import IngestCurveConfig

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")
IMG = np.arange(64, dtype=np.uint16).reshape(8, 8)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    out = {}
    for name in ("detector", "daemon", "intruder"):
        folder = tmp_path / name
        folder.mkdir()
        public, secret = zmq.auth.create_certificates(folder, name)
        Path(secret).chmod(0o600)
        out[name] = (Path(public), Path(secret))
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "daemon.key").write_bytes(out["daemon"][0].read_bytes())
    return out


def frames_through(source: ZmqSource, send: zmq.Socket, n: int = 5, timeout: float = 3.0) -> list[int]:
    decoder = make_decoder("array-1.0")
    got: list[int] = []
    deadline = time.monotonic() + timeout
    sent = 0
    while time.monotonic() < deadline and len(got) < n:
        if sent < n:
            try:
                send.send_multipart(enc.encode_array10(sent, IMG), zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                pass
        msg = source.get(timeout=0.05)
        if msg is not None:
            got += [e.frame_id for e in decoder.decode(msg.parts)]
    return got


def curve_push(ctx: zmq.Context, keys: dict, *, server: bool) -> tuple[zmq.Socket, int]:
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    public, secret = zmq.auth.load_certificate(keys["detector"][1])
    push.curve_publickey, push.curve_secretkey = public, secret
    push.curve_server = server
    return push, 0


def test_connecting_to_a_curve_server(ctx: zmq.Context, keys: dict, caplog: pytest.LogCaptureFixture) -> None:
    push, _ = curve_push(ctx, keys, server=True)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    curve = IngestCurveConfig(secret_file=keys["daemon"][1], server_public_file=keys["detector"][0])
    source = ZmqSource(IngestConfig(endpoint=f"tcp://127.0.0.1:{port}", format="array-1.0", policy="queue",
                                    curve=curve), context=ctx)
    with caplog.at_level(logging.INFO), source:
        assert frames_through(source, push) == [0, 1, 2, 3, 4]
    secret_text = keys["daemon"][1].read_text()
    assert all(line not in caplog.text for line in secret_text.splitlines() if "secret-key" in line)


def test_wrong_server_key_receives_nothing_and_says_why(ctx: zmq.Context, keys: dict,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    push, _ = curve_push(ctx, keys, server=True)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    curve = IngestCurveConfig(secret_file=keys["daemon"][1], server_public_file=keys["intruder"][0])
    with caplog.at_level(logging.WARNING), ZmqSource(
            IngestConfig(endpoint=f"tcp://127.0.0.1:{port}", format="array-1.0", curve=curve),
            context=ctx) as source:
        assert frames_through(source, push, timeout=1.0) == []
    assert caplog.text.count("handshake with") == 1  # once, not once per retry


def test_bound_source_accepts_only_authorized_senders(ctx: zmq.Context, keys: dict, tmp_path: Path) -> None:
    daemon_public = keys["daemon"][0]
    curve = IngestCurveConfig(secret_file=keys["detector"][1], authorized_clients_dir=tmp_path / "allowed")
    cfg = IngestConfig(endpoint="tcp://127.0.0.1:*", bind=True, format="array-1.0", policy="queue", curve=curve)
    with ZmqSource(cfg, context=ctx) as source:
        assert source.endpoint is not None
        server_public, _ = zmq.auth.load_certificate(keys["detector"][0])
        for who, expected in (("intruder", []), ("daemon", [0, 1, 2, 3, 4])):
            push = ctx.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            push.curve_publickey, push.curve_secretkey = zmq.auth.load_certificate(keys[who][1])
            push.curve_serverkey = server_public
            push.connect(source.endpoint)
            assert frames_through(source, push, timeout=1.5 if not expected else 5.0) == expected, who
            push.close(0)
        assert daemon_public.exists()
        # a plain (non-CURVE) sender is refused too
        plain = ctx.socket(zmq.PUSH)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(source.endpoint)
        assert frames_through(source, plain, timeout=1.0) == []
        plain.close(0)


def test_curve_config_errors(keys: dict, tmp_path: Path, ctx: zmq.Context) -> None:
    with pytest.raises(ValueError, match="server_public_file"):
        IngestConfig(curve=IngestCurveConfig(secret_file=keys["daemon"][1]))
    with pytest.raises(ValueError, match="for connecting"):
        IngestConfig(bind=True, curve=IngestCurveConfig(secret_file=keys["daemon"][1],
                                                       server_public_file=keys["detector"][0]))
    cfg = IngestConfig(endpoint="tcp://127.0.0.1:1", curve=IngestCurveConfig(
        secret_file=keys["daemon"][0], server_public_file=keys["detector"][0]))  # a public file as secret
    with pytest.raises(ConfigError, match="no secret key"):
        ZmqSource(cfg, context=ctx).start()
    cfg = IngestConfig(endpoint="tcp://127.0.0.1:1", curve=IngestCurveConfig(
        secret_file=tmp_path / "missing.key_secret", server_public_file=keys["detector"][0]))
    with pytest.raises(ConfigError, match="cannot read CURVE certificate"):
        ZmqSource(cfg, context=ctx).start()


def test_secret_file_readable_by_others_is_warned(keys: dict, ctx: zmq.Context,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    keys["daemon"][1].chmod(0o644)
    cfg = IngestConfig(endpoint="tcp://127.0.0.1:1", curve=IngestCurveConfig(
        secret_file=keys["daemon"][1], server_public_file=keys["detector"][0]))
    with caplog.at_level(logging.WARNING), ZmqSource(cfg, context=ctx):
        pass
    assert "readable by group or others" in caplog.text and "chmod 600" in caplog.text
