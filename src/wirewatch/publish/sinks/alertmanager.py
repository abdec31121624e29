"""Alertmanager API v2 sink: ``POST {url}/api/v2/alerts`` with a JSON list of alerts.

Alertmanager forgets an alert that is not posted again within its
``resolve_timeout`` (or after the ``endsAt`` we send), so the worker re-posts
every active firing alert each ``resend_interval_s`` (as Prometheus does) and
posts a resolution with ``endsAt`` set to the moment the condition cleared.
Posting the same alert again is idempotent on Alertmanager's side (it merges by
label set), so a retried request does no harm.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from wirewatch.publish.config import AlertmanagerSinkConfig
from wirewatch.publish.encode import dumps, rfc3339
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.sinks.credentials import Secret, load_secret
from wirewatch.publish.sinks.transport import Backoff, HttpTransport, display_url, retry_after_s, retryable
from wirewatch.types import Alert

log = logging.getLogger(__name__)

_POLL_S = 0.5  # longest the worker sleeps before looking at the close flag again


def alertmanager_payload(alert: Alert, *, now: float, firing_ttl_s: float | None = None,
                         generator_url: str | None = None) -> dict[str, Any]:
    """One element of the API v2 ``postableAlerts`` list."""
    item: dict[str, Any] = {
        "labels": {"alertname": alert.name, **alert.labels},
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339(alert.starts_at),
    }
    # Alertmanager rejects an end before the start (a clock stepped back): clamp it
    if alert.state == "resolved":
        item["endsAt"] = rfc3339(max(alert.starts_at, alert.ends_at if alert.ends_at is not None else now))
    elif firing_ttl_s is not None:
        item["endsAt"] = rfc3339(max(alert.starts_at, now) + firing_ttl_s)
    if generator_url:
        item["generatorURL"] = generator_url
    return item


class AlertmanagerSink:
    def __init__(self, config: AlertmanagerSinkConfig, *, metrics: AlertMetrics,
                 transport: HttpTransport | None = None, generator_url: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = config.name
        self.config = config
        self.url = config.url.rstrip("/") + "/api/v2/alerts"
        self._metrics = metrics
        self._transport = transport or HttpTransport()
        self._shown_url = display_url(self.url)  # for logs: no query string (it may hold a token)
        self._generator_url = config.generator_url or generator_url
        self._token: Secret | None = (load_secret(config.bearer_token, f"sink {config.name}: bearer_token")
                                      if config.bearer_token else None)
        self._clock = clock
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=config.queue_size)
        self._active: dict[str, Alert] = {}  # fingerprint -> firing alert to keep re-posting
        self._next_resend = 0.0
        self._carry: list[Alert] = []  # taken from the queue but not handled: an unexpected error came first
        self._closing = threading.Event()
        self._abort = threading.Event()  # set when close() runs out of time: stop waiting and retrying
        for result in ("success", "failed"):
            metrics.alerts_sent.labels(sink=self.name, result=result)
        self._thread = threading.Thread(target=self._run, name=f"alert-sink-{self.name}", daemon=True)
        self._thread.start()
        metrics.watch(self.name, self.alive)

    def __repr__(self) -> str:
        return f"AlertmanagerSink(name={self.name!r}, url={self._shown_url!r})"

    def send(self, alert: Alert) -> None:
        if self._closing.is_set():
            self._metrics.sent(self.name, "dropped")
            log.warning("alert sink %s is closed; dropped alert %s", self.name, alert.fingerprint)
            return
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self._metrics.sent(self.name, "dropped")
            log.error("alert sink %s: queue full (%d); dropped alert %s", self.name, self.config.queue_size,
                      alert.fingerprint)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has been handled (delivered or given up). For tests and shutdown."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:  # task_done() is called after an item's post finished
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # wake the worker
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join(1.0)

    # -- worker ---------------------------------------------------------------------------------------

    def _take(self, wait: float) -> tuple[list[Alert], int]:
        """Up to max_batch alerts (waiting at most ``wait`` for the first) and how many items were taken."""
        batch: list[Alert] = []
        taken = 0
        try:
            item = self._queue.get(timeout=max(0.0, min(wait, _POLL_S)))
        except queue.Empty:
            return batch, taken
        while True:
            taken += 1
            if item is not None:
                batch.append(item)
            if len(batch) >= self.config.max_batch:
                return batch, taken
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, taken

    def alive(self) -> bool:
        """True while the worker runs (or after ``close()``); False once it ended by itself."""
        return self._thread.is_alive() or self._closing.is_set() or self._abort.is_set()

    def _run(self) -> None:
        while not self._abort.is_set():
            taken = 0
            try:
                taken = self._step()
            except Exception:  # catch-all: a bug or an unforeseen failure must not end delivery for good
                self._metrics.error(self.name)
                log.exception("alert sink %s: unexpected error in the delivery loop; going on", self.name)
                self._abort.wait(min(self.config.backoff_max_s, max(self.config.backoff_initial_s, _POLL_S)))
            finally:
                for _ in range(taken):
                    self._queue.task_done()
            if self._closing.is_set() and self._queue.empty() and not self._carry:
                break

    def _step(self) -> int:
        """Take what is queued, post it (and the resends due); returns how many queue items were taken."""
        batch, taken = self._take(0.0 if self._carry else self._wait_s())
        batch, carried, self._carry = [*self._carry, *batch], bool(self._carry), []
        try:
            to_post: dict[str, Alert] = {}
            for alert in batch:
                to_post[alert.fingerprint] = alert
                if alert.state == "firing":
                    self._active[alert.fingerprint] = alert
                else:
                    self._active.pop(alert.fingerprint, None)
            now = self._clock()
            if self._active and now >= self._next_resend:
                for fp, alert in self._active.items():
                    to_post.setdefault(fp, alert)
                self._next_resend = now + self.config.resend_interval_s
            if to_post:
                for rejected in self._post(list(to_post.values())):
                    self._active.pop(rejected.fingerprint, None)  # never re-post what Alertmanager refuses
        except BaseException:
            if carried:  # failed twice: give these up rather than fail on them for ever
                self._metrics.sent(self.name, "failed", len(batch))
                log.error("alert sink %s: gave up on %d alert(s) after unexpected errors", self.name, len(batch))
            else:  # keep them for the next step: an unexpected error must not lose what was queued
                self._carry = batch
            for _ in range(taken):  # flush() must not wait for items a failed step took
                self._queue.task_done()
            raise
        return taken

    def _wait_s(self) -> float:
        return self._next_resend - self._clock() if self._active else _POLL_S

    def _post(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Post with retries; returns the alerts Alertmanager rejected for good (4xx)."""
        n = len(alerts)
        headers = {"Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s,
                          self.config.backoff_multiplier, self.config.jitter)
        for attempt in range(1, self.config.max_attempts + 1):
            now = self._clock()
            body = dumps([alertmanager_payload(a, now=now, firing_ttl_s=self.config.firing_ttl_s,
                                               generator_url=self._generator_url) for a in alerts])
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
                    self._metrics.sent(self.name, "success", n)
                    return []
                snippet = resp.body[:200].decode("utf-8", "replace")
                problem = f"HTTP {resp.status}: {snippet}"
                if not retryable(resp.status):
                    if n > 1:  # one bad alert fails the whole request: find it, deliver the others
                        return [bad for alert in alerts for bad in self._post([alert])]
                    self._metrics.sent(self.name, "failed", n)
                    log.error("alert sink %s: %s rejected %d alert(s): %s", self.name, self._shown_url, n, problem)
                    return list(alerts)
                hint = retry_after_s(resp)
            if attempt == self.config.max_attempts or self._abort.is_set():
                break
            self._metrics.sent(self.name, "retry", n)
            delay = backoff.next_delay(hint)
            log.warning("alert sink %s: attempt %d/%d to %s failed (%s); retrying in %.2f s", self.name,
                        attempt, self.config.max_attempts, self._shown_url, problem, delay)
            if self._abort.wait(delay):
                break
        self._metrics.sent(self.name, "failed", n)
        log.error("alert sink %s: gave up on %d alert(s) to %s: %s", self.name, n, self._shown_url, problem)
        return []  # not rejected, just unreachable: active ones are re-posted at the next resend
