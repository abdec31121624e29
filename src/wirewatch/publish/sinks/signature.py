"""Webhook signatures with replay protection, in the scheme widely used webhook providers use (Stripe's).

The sender signs ``"<t>." + body`` with HMAC-SHA256, ``t`` being the Unix time of the attempt in whole
seconds, and sends both in one header::

    X-Wirewatch-Signature-256: t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

A receiver recomputes the HMAC over the timestamp it was given and the raw body, compares in constant time,
and refuses a timestamp outside its tolerance (default 300 s): a captured request cannot be replayed later
than that, and within the window the ``Idempotency-Key`` lets it drop the copy. Several ``v1=`` values may
be present (e.g. while a key is rotated); one match is enough. Unknown keys are ignored, so later schemes
can be added beside ``v1``.

``verify_signature`` returns False (never raises) for anything malformed: a missing header, non-ASCII text,
no or several ``t``, a non-numeric time, a ``v1`` that is not 64 hex digits. The older body-only form
(``sha256=<hex HMAC of the body>``, replayable for ever) is checked only when the caller passes
``legacy=True`` (docs/alerts.md says when that is acceptable); the sink sends it only with
``signature_version: body-only``.

Written by hand (twenty lines over ``hmac``): the verifiers of the providers' libraries are tied to their
own payloads and clients; the scheme is the same.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

DEFAULT_TOLERANCE_S = 300.0
MAX_HEADER_CHARS = 2048  # a header with many candidate signatures is refused before any HMAC is computed
_T = re.compile(r"[0-9]{1,15}")
_V1 = re.compile(r"[0-9a-f]{64}")


def _hmac_hex(secret: bytes, data: bytes) -> str:
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """Header value ``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` (now by default)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_hmac_hex(secret, str(t).encode('ascii') + b'.' + body)}"


def sign_body_only(secret: bytes, body: bytes) -> str:
    """The older header value ``sha256=<hex HMAC-SHA256(secret, body)>``: no timestamp, replayable."""
    return "sha256=" + _hmac_hex(secret, body)


def verify_signature(secret: bytes | str, body: bytes, header_value: str | bytes | None, *,
                     tolerance_s: float = DEFAULT_TOLERANCE_S, now: float | None = None,
                     legacy: bool = False) -> bool:
    """For receivers: True when ``header_value`` signs ``body`` with ``secret`` at a time within
    ``tolerance_s`` of ``now``; False for anything else, malformed input included."""
    try:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if isinstance(header_value, bytes):
            header_value = header_value.decode("ascii")
        if not isinstance(header_value, str) or not header_value.isascii() or len(header_value) > MAX_HEADER_CHARS:
            return False
        value = header_value.strip()
        if value.startswith("sha256="):
            return legacy and hmac.compare_digest(sign_body_only(key, body), value)
        stamps: list[str] = []
        candidates: list[str] = []
        for item in value.split(","):
            name, sep, field = item.strip().partition("=")
            if not sep:
                return False
            if name == "t":
                stamps.append(field)
            elif name == "v1":
                candidates.append(field)
        if len(stamps) != 1 or not _T.fullmatch(stamps[0]) or not candidates:
            return False
        if not all(_V1.fullmatch(c) for c in candidates):
            return False
        t = int(stamps[0])
        current = time.time() if now is None else now
        if not abs(current - t) <= tolerance_s:  # also False for a NaN tolerance
            return False
        expected = _hmac_hex(key, stamps[0].encode("ascii") + b"." + bytes(body))
        matched = False
        for candidate in candidates:  # no early exit: the time taken does not tell which one matched
            matched |= hmac.compare_digest(expected, candidate)
        return matched
    except Exception:
        return False
