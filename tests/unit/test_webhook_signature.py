"""Webhook signatures with replay protection (issue 39): ``t=...,v1=...`` over ``"<t>." + body``, checked
within a tolerance window; ``verify_signature`` returns False and never raises on malformed headers.
The copy in deploy/process-control/receiver.py must agree with the shipped verifier."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirewatch.publish.sinks.signature import sign, sign_body_only, verify_signature

KEY = b"k3y-for-tests"
BODY = b'{"version":1,"status":"firing"}'
T = 1_700_000_000


def _receiver_module() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "deploy" / "process-control" / "receiver.py"
    spec = importlib.util.spec_from_file_location("ww_receiver_for_signature_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


RECEIVER = _receiver_module()
VERIFIERS = [pytest.param(verify_signature, id="wirewatch"), pytest.param(RECEIVER.verify_signature, id="receiver")]


@pytest.mark.parametrize("verify", VERIFIERS)
def test_signature_covers_time_and_body_within_the_tolerance(verify: Any) -> None:
    header = sign(KEY, BODY, timestamp=T)
    assert header == f"t={T},v1=" + hmac.new(KEY, f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert verify(KEY, BODY, header, now=T)
    assert verify(KEY, BODY, header, now=T + 300) and verify(KEY, BODY, header, now=T - 300)
    # a captured request replayed later than the window (or sent from a clock far ahead) is refused
    assert not verify(KEY, BODY, header, now=T + 301) and not verify(KEY, BODY, header, now=T - 301)
    assert verify(KEY, BODY, header, now=T + 3600, tolerance_s=3600)
    assert not verify(KEY, BODY, header, now=T, tolerance_s=float("nan"))
    assert not verify(b"other key", BODY, header, now=T)
    assert not verify(KEY, BODY + b" ", header, now=T)
    # the time is signed: moving it breaks the signature
    moved = header.replace(f"t={T}", f"t={T + 3600}")
    assert not verify(KEY, BODY, moved, now=T + 3600)
    # several v1 values (a key being rotated): one match is enough; unknown keys are ignored
    other = sign(b"old key", BODY, timestamp=T).split("v1=")[1]
    assert verify(KEY, BODY, f"t={T},v1={other},v1={header.split('v1=')[1]},v0=abc", now=T)


MALFORMED: list[Any] = [
    None, "", " ", "garbage", "t=,v1=", f"t={T}", f"v1={'0' * 64}", f"t=abc,v1={'0' * 64}",
    f"t={T},t={T},v1={'0' * 64}", f"t={T},v1={'0' * 63}", f"t={T},v1={'0' * 65}", f"t={T},v1={'G' * 64}",
    f"t=-{T},v1={'0' * 64}", f"t={T}.5,v1={'0' * 64}", f"t={T},v1={'0' * 64},junk", "t=\u0661\u0662,v1=x",
    f"t={T},v1=" + "\u00e9" * 64, "\u00e9", "sha256=\u00e9\u00e9", "\x00" * 10, "t=1," + "v1=" + "a" * 64 + "," * 5000,
    b"\xff\xfe", 12345, ["t=1"],
]


@pytest.mark.parametrize("verify", VERIFIERS)
@pytest.mark.parametrize("header", MALFORMED)
def test_malformed_headers_are_false_never_an_exception(verify: Any, header: Any) -> None:
    # the body-only verifier raised TypeError on a non-ASCII header before ("sha256=\u00e9\u00e9")
    assert verify(KEY, BODY, header, now=T) is False


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_header_is_false(header: str) -> None:
    assert verify_signature(KEY, BODY, header, now=T) is False
    assert RECEIVER.verify_signature(KEY, BODY, header, now=T) is False


def test_body_only_form_only_when_asked_for() -> None:
    legacy = sign_body_only(KEY, BODY)
    assert legacy == "sha256=" + hmac.new(KEY, BODY, hashlib.sha256).hexdigest()
    assert not verify_signature(KEY, BODY, legacy)  # replayable for ever: refused by default
    assert verify_signature(KEY, BODY, legacy, legacy=True)
    assert not verify_signature(KEY, BODY + b"x", legacy, legacy=True)
    assert not RECEIVER.verify_signature(KEY, BODY, legacy)
    assert verify_signature(KEY.decode(), BODY, sign(KEY, BODY))  # a str key is the same key
