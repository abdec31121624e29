"""``wirewatch.web.guard``'s rules without sockets: Host allowlist, Origin check, sessions, cookies."""

from __future__ import annotations

import socket

from wirewatch.web.guard import HostPolicy, Sessions, cookie_value, host_name, origin_allowed, session_cookie


def test_host_name_strips_ports_brackets_case_and_a_trailing_dot() -> None:
    assert [host_name(h) for h in ("LocalHost:9108", "[::1]:80", "::1", "example.org.", "10.0.0.5")] == \
        ["localhost", "::1", "::1", "example.org", "10.0.0.5"]


def test_host_policy_defaults_to_loopback_names_and_the_bound_address() -> None:
    policy = HostPolicy("10.1.2.3")
    for host in ("localhost", "127.0.0.1:9108", "[::1]:9108", "10.1.2.3:9108", None):
        assert policy.allows(host), host
    for host in ("evil.example", "10.1.2.4", "localhost.evil.example", "", "127.0.0.1.evil.example"):
        assert not policy.allows(host), host


def test_host_policy_on_a_wildcard_bind_answers_addresses_and_this_machine_but_not_other_names() -> None:
    policy = HostPolicy("0.0.0.0")
    assert policy.allows("10.20.30.40:9108") and policy.allows("[fe80::1]:9108")
    assert policy.allows(socket.gethostname()) and not policy.allows("evil.example")


def test_host_policy_allowed_names_domains_and_any() -> None:
    policy = HostPolicy("127.0.0.1", ["WireWatch.example.org", ".lan"])
    assert policy.allows("wirewatch.example.org:443") and policy.allows("a.b.lan") and policy.allows("lan")
    assert not policy.allows("evillan") and not policy.allows("example.org")
    assert HostPolicy("127.0.0.1", ["*"]).allows("anything.example")


def test_origin_is_allowed_when_absent_same_origin_or_listed() -> None:
    assert origin_allowed(None, "127.0.0.1:9108", ())
    assert origin_allowed("http://127.0.0.1:9108", "127.0.0.1:9108", ())
    assert origin_allowed("https://WireWatch.example.org/", "10.0.0.1:9108", ["https://wirewatch.example.org"])
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9109", "file://", "http://127.0.0.1:9108.evil"):
        assert not origin_allowed(origin, "127.0.0.1:9108", ()), origin
    assert not origin_allowed("http://127.0.0.1:9108", None, ())


def test_sessions_are_random_expire_and_are_bounded() -> None:
    sessions = Sessions(ttl_s=60, limit=3)
    values = [sessions.create() for _ in range(4)]
    assert len(set(values)) == 4 and all(len(v) >= 40 for v in values)
    assert not sessions.valid(values[0]) and all(sessions.valid(v) for v in values[1:])  # the oldest forgotten
    assert not sessions.valid(None) and not sessions.valid("") and not sessions.valid("guess")
    expired = Sessions(ttl_s=-1)
    assert not expired.valid(expired.create())


def test_session_cookie_attributes_and_parsing() -> None:
    cookie = session_cookie("abc", secure=False, max_age_s=60)
    assert cookie == "wirewatch_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60"
    assert session_cookie("abc", secure=True, max_age_s=60).endswith("; Secure")
    assert cookie_value("a=1; wirewatch_session=xyz", "wirewatch_session") == "xyz"
    assert cookie_value('bad"cookie', "wirewatch_session") is None and cookie_value(None, "x") is None
