"""Control PVs are read-only unless ``epics.writers`` lists the client (issue 39): a real p4p client on
loopback writes ``alerts_paused`` / ``reset_changepoints`` of a real ``PvaServer``; the server checks the
operation's peer address and account."""

from __future__ import annotations

import getpass
import logging
from typing import Any

import pytest
from pydantic import ValidationError

pytest.importorskip("p4p", reason="p4p (the epics extra) is not installed")

from tests.system.test_epics_pva import pva_conf
from wirewatch.epics.config import EpicsConfig, EpicsServerConfig
from wirewatch.epics.server import Controls, PvaServer, peer_ip

P = "WR:WW:"


def _serve(writers: list[dict[str, str]]) -> tuple[PvaServer, dict[str, str], list[Any]]:
    calls: list[Any] = []
    epics = EpicsConfig.model_validate({"writers": writers})
    conf = pva_conf()
    controls = Controls(pause_alerts=lambda paused: calls.append(("pause", paused)),
                        reset_changepoints=lambda: calls.append("reset"))
    server = PvaServer(EpicsServerConfig.model_validate({"prefix": P, "overlay": False}), pva_conf=conf,
                       controls=controls, writers=epics.writers).start()
    return server, conf, calls


def _put(conf: dict[str, str], name: str, value: int) -> Exception | None:
    from p4p.client.thread import Context

    with Context("pva", conf=conf, useenv=False) as ctx:
        try:
            ctx.put(P + name, value)
        except Exception as exc:
            return exc
        return None


def _get(conf: dict[str, str], name: str) -> int:
    from p4p.client.thread import Context

    with Context("pva", conf=conf, useenv=False) as ctx:
        return int(ctx.get(P + name))


@pytest.mark.parametrize("writers", [
    [],  # the default: nobody
    [{"host": "10.99.0.0/16"}],  # another network
    [{"account": "somebody-else"}],
    [{"host": "127.0.0.1", "account": "somebody-else"}],  # both given: both must match
], ids=["none", "other-network", "other-account", "host-but-not-account"])
def test_writes_from_clients_not_listed_are_refused_counted_and_logged(
        writers: list[dict[str, str]], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wirewatch.epics.server")
    server, conf, calls = _serve(writers)
    try:
        error = _put(conf, "alerts_paused", 1)
        assert error is not None and "read-only for this client" in str(error)
        assert _put(conf, "reset_changepoints", 1) is not None
        assert _get(conf, "alerts_paused") == 0 and not server.paused and server.reset_requests == 0
        assert calls == []  # nothing acted on
        assert server.refused_writes == {"alerts_paused": 1, "reset_changepoints": 1}
    finally:
        server.close()
    refused = [r.getMessage() for r in caplog.records if "refused a PV Access write" in r.getMessage()]
    assert len(refused) == 2 and "127.0.0.1:" in refused[0] and getpass.getuser() in refused[0]


@pytest.mark.parametrize("writers", [
    [{"host": "127.0.0.1"}],
    [{"host": "127.0.0.0/8"}],
    [{"account": getpass.getuser()}],
    [{"host": "10.0.0.1"}, {"host": "127.0.0.1", "account": getpass.getuser()}],  # any entry may match
], ids=["host", "network", "account", "second-entry-host-and-account"])
def test_listed_clients_may_write(writers: list[dict[str, str]]) -> None:
    server, conf, calls = _serve(writers)
    try:
        assert _put(conf, "alerts_paused", 1) is None
        assert _get(conf, "alerts_paused") == 1 and server.paused
        assert _put(conf, "reset_changepoints", 1) is None
        assert calls == [("pause", True), "reset"] and server.refused_writes == {}
        error = _put(conf, "alerts_paused", 7)  # a listed writer still gets the value checked
        assert error is not None and "must be 0" in str(error)
    finally:
        server.close()


def test_writers_config_and_peer_parsing() -> None:
    with pytest.raises(ValidationError, match="not an IP address or network"):
        EpicsConfig.model_validate({"writers": [{"host": "ops-console.example"}]})
    with pytest.raises(ValidationError, match="needs 'host', 'account' or both"):
        EpicsConfig.model_validate({"writers": [{}]})
    assert EpicsConfig.model_validate({}).writers == []
    assert str(peer_ip("10.0.3.7:5075")) == "10.0.3.7" and str(peer_ip("[::1]:40312")) == "::1"
    assert str(peer_ip("[::ffff:127.0.0.1]:1")) == "127.0.0.1" and peer_ip("garbage") is None
