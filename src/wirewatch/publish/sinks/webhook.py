"""Generic HTTP webhook for process-control hooks, with a persistent spool.

``send`` writes the alert's JSON body to the on-disk spool (atomic, fsynced)
and returns; a worker thread posts spooled bodies oldest first and deletes
each after a 2xx. A receiver that is down or slow (connection refused,
timeout, 408/425/429/5xx) is retried with exponential backoff while the
alerts wait on disk, through a daemon restart too. Other 4xx and 3xx answers
are final: the body moves to ``failed/`` with the reason.

Each body carries an idempotency key (also the ``Idempotency-Key`` header),
derived from the alert's identity and state, identical on every retry and
after a restart: a receiver that ignores keys it has already processed sees
every alert exactly once, even when a reply was lost after it acted.

Request headers::

    Content-Type: application/json
    Idempotency-Key: <key>
    X-Wirewatch-Signature-256: t=<unix s>,v1=<hex HMAC-SHA256 of "<t>." + raw body>   (with hmac_secret)
    Authorization: Bearer <token>                                                 (with bearer_token)

The signature is made at each attempt, so a retry hours later still carries a fresh time; receivers check
it with ``verify_signature`` (``wirewatch.publish.sinks.signature``: a tolerance window, constant time,
False for anything malformed). ``signature_version: body-only`` sends the older ``sha256=<hex HMAC of the
body>`` instead, for a receiver not yet updated (replayable: see docs/alerts.md).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from wirewatch.errors import SinkError
from wirewatch.publish.config import WebhookSinkConfig
from wirewatch.publish.encode import alert_to_dict, dumps
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.sinks.credentials import Secret, load_secret
from wirewatch.publish.sinks.signature import sign, sign_body_only, verify_signature
from wirewatch.publish.sinks.spool import Spool, SpoolEntry, SpoolFull
from wirewatch.publish.sinks.transport import Backoff, HttpTransport, display_url, retry_after_s, retryable
from wirewatch.types import Alert

log = logging.getLogger(__name__)

__all__ = ["WebhookSink", "idempotency_key", "sign", "verify_signature", "webhook_body"]

BODY_VERSION = 1
_POLL_S = 0.5


def idempotency_key(alert: Alert) -> str:
    """Same alert transition -> same key (32 hex digits), on every retry and after a restart."""
    ident = "\n".join([alert.fingerprint, alert.state, repr(float(alert.starts_at)),
                       repr(None if alert.ends_at is None else float(alert.ends_at))])
    return hashlib.sha256(ident.encode("utf-8")).hexdigest()[:32]


def webhook_body(alert: Alert, key: str) -> dict[str, Any]:
    return {"version": BODY_VERSION, "source": "wirewatch", "idempotency_key": key, "status": alert.state,
            "alert": alert_to_dict(alert)}


class WebhookSink:
    def __init__(self, config: WebhookSinkConfig, *, metrics: AlertMetrics,
                 transport: HttpTransport | None = None) -> None:
        self.name = config.name
        self.config = config
        self.url = config.url
        self._metrics = metrics
        self._transport = transport or HttpTransport()
        self._shown_url = display_url(self.url)  # for logs: no query string (it may hold a token)
        what = f"sink {config.name}"
        self._hmac: Secret | None = load_secret(config.hmac_secret, f"{what}: hmac_secret") if config.hmac_secret else None
        self._token: Secret | None = (load_secret(config.bearer_token, f"{what}: bearer_token")
                                      if config.bearer_token else None)
        self.spool = Spool(config.spool_dir, max_files=config.max_spool_files,
                           max_failed_files=config.max_failed_files)
        self._backoff = Backoff(config.backoff_initial_s, config.backoff_max_s, config.backoff_multiplier,
                                config.jitter)
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._abort = threading.Event()
        self._busy = threading.Lock()  # held while an entry is being delivered
        for result in ("success", "failed", "spooled"):
            metrics.alerts_sent.labels(sink=self.name, result=result)
        self._failed_dropped_seen = 0
        self._update_depth()
        if len(self.spool):
            log.info("alert sink %s: %d alert(s) waiting in spool %s from an earlier run", self.name,
                     len(self.spool), self.spool.directory)
        self._thread = threading.Thread(target=self._run, name=f"alert-sink-{self.name}", daemon=True)
        self._thread.start()
        metrics.watch(self.name, self.alive)

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, url={self._shown_url!r}, spool={str(self.spool.directory)!r})"

    def send(self, alert: Alert) -> None:
        """Spool the alert durably (a few ms: one fsynced file) and wake the worker."""
        key = idempotency_key(alert)
        body = dumps(webhook_body(alert, key))
        try:
            written = self.spool.put(key, body)
        except SpoolFull as exc:
            self._metrics.sent(self.name, "dropped")
            log.error("alert sink %s: %s; dropped alert %s", self.name, exc, alert.fingerprint)
            return
        except SinkError as exc:
            self._metrics.sent(self.name, "dropped")
            log.error("alert sink %s: %s; dropped alert %s", self.name, exc, alert.fingerprint)
            return
        if written:
            self._metrics.sent(self.name, "spooled")
            self._update_depth()
        self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the spool is empty (everything delivered or moved to failed/)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not len(self.spool) and not self._busy.locked():
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what the receiver takes within ``timeout``; the rest stays spooled for the next start."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join(self.config.timeout_s + 1.0)
        self.spool.close()

    # -- worker ---------------------------------------------------------------------------------------

    def _update_depth(self) -> None:
        self._metrics.set_spool_depth(self.name, len(self.spool))
        self._metrics.failed_files.labels(sink=self.name).set(self.spool.failed_count)
        dropped = self.spool.failed_dropped - self._failed_dropped_seen
        if dropped:
            self._metrics.failed_dropped.labels(sink=self.name).inc(dropped)
            self._failed_dropped_seen += dropped

    def alive(self) -> bool:
        """True while the worker runs (or after ``close()``); False once it ended by itself."""
        return self._thread.is_alive() or self._closing.is_set() or self._abort.is_set()

    def _run(self) -> None:
        while not self._abort.is_set():
            try:
                stop = self._drain()
            except Exception:  # catch-all: a bug or an unforeseen failure must not end delivery for good
                self._metrics.error(self.name)
                delay = self._backoff.next_delay()
                log.exception("alert sink %s: unexpected error in the delivery loop; %d alert(s) spooled, "
                              "retrying in %.2f s", self.name, len(self.spool), delay)
                stop = self._closing.wait(delay)
            if stop:
                return

    def _drain(self) -> bool:
        """One pass over the spool; True when the worker should stop."""
        entries = self.spool.entries()
        if not entries:
            if self._closing.is_set():
                return True
            self._wake.wait(_POLL_S)
            self._wake.clear()
            return False
        retry_in = None
        for entry in entries:  # one listing per pass, not per alert: a long backlog drains in O(n)
            if self._abort.is_set():
                return True
            with self._busy:
                retry_in = self._handle(entry)
            if retry_in is not None:
                break
        if retry_in is None:
            return False
        if self._closing.is_set():
            return True  # receiver unhappy while shutting down: leave the rest on disk
        # _closing doubles as the interrupt: close() does not wait out a long backoff
        return self._closing.wait(retry_in)

    def _handle(self, entry: SpoolEntry) -> float | None:
        """Try one spooled alert; returns a backoff delay when it should be retried, else None."""
        max_age = self.config.max_age_s
        if max_age is not None and entry.age_s > max_age:
            self.spool.move_to_failed(entry, f"expired: spooled {entry.age_s:.0f} s > max_age_s {max_age:g}")
            self._metrics.sent(self.name, "expired")
            self._update_depth()
            log.error("alert sink %s: alert %s expired in the spool after %.0f s", self.name, entry.key,
                      entry.age_s)
            return None
        try:
            body = self.spool.read(entry)
        except FileNotFoundError:
            self.spool.remove(entry)
            self._update_depth()
            return None
        except (OSError, SinkError) as exc:
            self.spool.move_to_failed(entry, f"unreadable: {exc}")
            self._metrics.sent(self.name, "failed")
            self._update_depth()
            return None
        headers = {**self.config.headers, "Content-Type": "application/json", "Idempotency-Key": entry.key}
        if self._hmac is not None:
            key = self._hmac.reveal().encode("utf-8")
            headers[self.config.signature_header] = (sign_body_only(key, body)
                                                     if self.config.signature_version == "body-only"
                                                     else sign(key, body))
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        hint = None
        try:
            resp = self._transport.post(self.url, body, headers, self.config.timeout_s)
        except OSError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # catch-all: an unexpected error is one more failed attempt, counted
            self._metrics.error(self.name)
            log.exception("alert sink %s: unexpected error posting to %s", self.name, self._shown_url)
            problem = f"unexpected {type(exc).__name__}: {exc}"
        else:
            if 200 <= resp.status < 300:
                self.spool.remove(entry)
                self._metrics.sent(self.name, "success")
                self._update_depth()
                self._backoff.reset()
                return None
            problem = f"HTTP {resp.status}: {resp.body[:200].decode('utf-8', 'replace')}"
            if not retryable(resp.status):
                self.spool.move_to_failed(entry, f"rejected by {self._shown_url}: {problem}")
                self._metrics.sent(self.name, "failed")
                self._update_depth()
                log.error("alert sink %s: %s rejected alert %s (%s); moved to %s", self.name, self._shown_url,
                          entry.key, problem, self.spool.failed_directory)
                return None
            hint = retry_after_s(resp)
        self._metrics.sent(self.name, "retry")
        delay = self._backoff.next_delay(hint)
        log.warning("alert sink %s: delivering %s to %s failed (%s); %d alert(s) spooled, retrying in %.2f s",
                    self.name, entry.key, self._shown_url, problem, len(self.spool), delay)
        return delay
