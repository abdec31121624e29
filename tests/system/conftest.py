"""Fixtures shared by the system tests (plain helpers are in ``helpers.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from tests.system.alert_receiver import AlertReceiver
from tests.system.helpers import Alertmanager, bind_push, last_endpoint, start_alertmanager, stop_server

AM_CONFIG = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook}/am
        send_resolved: true
"""


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    """A ZeroMQ context of its own, destroyed (linger 0) after the test."""
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def pusher() -> Iterator[tuple[zmq.Socket, str]]:
    """(PUSH socket, endpoint): the detector's side, bound on a free loopback port, in its own context."""
    context = zmq.Context()
    sock = bind_push(context)
    yield sock, last_endpoint(sock)
    sock.close(0)
    context.term()


@pytest.fixture
def am_hook() -> Iterator[AlertReceiver]:
    """The HTTP receiver Alertmanager (the ``alertmanager`` fixture) sends its notifications to."""
    hook = AlertReceiver()
    yield hook
    hook.close()


@pytest.fixture
def alertmanager(tmp_path: Path, am_hook: AlertReceiver) -> Iterator[Alertmanager]:
    """A real Alertmanager on loopback that forwards every notification (resolved ones too) to ``am_hook``
    at once (no group wait)."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(AM_CONFIG.format(hook=am_hook.url))
    server = start_alertmanager(config, tmp_path)
    yield server
    stop_server(server)
