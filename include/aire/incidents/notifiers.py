"""Tell people about incidents: a JSON webhook, a Slack incoming webhook, PagerDuty Events v2.

The library takes plain URLs and keys (``Channel``); the Airflow adapter (``aire_airflow.connections``) turns a config's
``notify.channels`` entries (each naming an Airflow connection) into channels. An incident
is always stored before anything here runs, so a receiver that is down loses nothing:
``deliver`` retries with exponential backoff, each delivery is written to the incident's
timeline (``notified``, ``"<channel>:<action>"``), and ``deliver_pending`` (run by the
aire_incident_sweep DAG) sends whatever the timeline says is still owed.

PagerDuty gets ``trigger`` / ``acknowledge`` / ``resolve`` with the incident's dedup key, so
a page opened by one process is closed by another. Endpoints are configurable (the
connection's host), which is also how the tests point every kind at a loopback receiver.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from aire.config import ChannelKind, Notify, NotifyChannel
from aire.errors import InputError
from aire.incidents.store import IncidentStore
from aire.incidents.types import Incident, Severity

log = logging.getLogger(__name__)

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SLACK_WEBHOOK_BASE = "https://hooks.slack.com/services"
_PAGERDUTY_SEVERITY = {Severity.CRITICAL: "critical", Severity.HIGH: "error",
                       Severity.MEDIUM: "warning", Severity.LOW: "info"}
# 408 and 429 say "later"; every other 4xx says the request itself is wrong.
_RETRYABLE_4XX = {408, 429}


class Action(str, Enum):
    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Channel:
    """A resolved receiver: where to POST and with which key. Validated on construction."""

    name: str
    kind: ChannelKind
    url: str
    routing_key: str | None = None  # PagerDuty's integration key
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _is_http_url(self.url):
            raise InputError(f"notifier '{self.name}': URL {_redact(self.url)!r} is not an "
                             f"http(s) URL with a host")
        if self.kind is ChannelKind.PAGERDUTY and not self.routing_key:
            raise InputError(f"notifier '{self.name}': PagerDuty needs a routing key "
                             f"(the connection's password)")

    @property
    def where(self) -> str:
        """The URL without its path: Slack's path is a secret, so logs never show it."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 10.0

    @classmethod
    def from_config(cls, notify: Notify) -> RetryPolicy:
        return cls(notify.attempts, notify.backoff_seconds, notify.max_backoff_seconds,
                   notify.timeout_seconds)

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after the n-th failed attempt: 1, 2, 4, ... times the base, capped."""
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (failed_attempt - 1)))


@dataclass(frozen=True)
class Delivery:
    channel: str
    action: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "action": self.action, "ok": self.ok,
                "attempts": self.attempts, "status": self.status, "error": self.error}


def channel_from_connection(spec: NotifyChannel, *, host: str | None, port: int | None = None,
                            schema: str | None = None, password: str | None = None,
                            extra: Mapping[str, Any] | None = None) -> Channel:
    """A channel from an Airflow connection's fields (the adapter reads the connection).

    URL: ``extra.url``, else the host (a full URL, or a host name with ``schema`` as the
    scheme, https by default, and ``extra.endpoint`` as the path), else the kind's public
    endpoint. Slack: the password is the webhook URL or its ``T…/B…/…`` path, as in
    Airflow's Slack provider. PagerDuty: the password (or ``extra.routing_key``) is the
    routing key. Webhook: ``extra.headers`` are sent, and a password as a bearer token.
    """
    extra = dict(extra or {})
    url = extra.get("url") or _url_from_host(host, port, schema, extra.get("endpoint"))
    headers = {str(k): str(v) for k, v in dict(extra.get("headers") or {}).items()}
    where = f"notify channel '{spec.label}' (connection '{spec.conn_id}')"
    if spec.kind is ChannelKind.PAGERDUTY:
        return _checked(where, spec, url or PAGERDUTY_EVENTS_URL,
                        routing_key=password or extra.get("routing_key"))
    if spec.kind is ChannelKind.SLACK:
        if password and password.startswith(("http://", "https://")):
            url = password
        elif password:
            url = f"{(url or SLACK_WEBHOOK_BASE).rstrip('/')}/{password.lstrip('/')}"
        if not url:
            raise InputError(f"{where}: no webhook URL (set the password to the Slack webhook URL)")
        return _checked(where, spec, url)
    if not url:
        raise InputError(f"{where}: no URL (set the connection's host or extra 'url')")
    if password and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {password}"
    return _checked(where, spec, url, headers=headers)


def payload(channel: Channel, incident: Incident, action: Action) -> dict[str, Any]:
    """The JSON body each kind of receiver expects."""
    if channel.kind is ChannelKind.PAGERDUTY:
        body: dict[str, Any] = {"routing_key": channel.routing_key,
                                "event_action": action.value, "dedup_key": incident.dedup_key}
        if action is Action.TRIGGER:
            body["client"] = "AIRE"
            body["payload"] = {
                "summary": incident.title[:1024], "source": f"aire/{incident.pipeline}",
                "severity": _PAGERDUTY_SEVERITY[incident.severity],
                "component": incident.pipeline, "group": incident.source.dag_id,
                "class": incident.source.kind,
                "custom_details": {"incident": incident.id, "count": incident.count,
                                   "postmortem": incident.postmortem,
                                   "source": incident.source.to_dict()}}
        return body
    if channel.kind is ChannelKind.SLACK:
        mark = {Action.TRIGGER: ":rotating_light:", Action.ACKNOWLEDGE: ":eyes:",
                Action.RESOLVE: ":white_check_mark:"}[action]
        text = (f"{mark} *{action.value}* [{incident.severity.value}] {incident.title} "
                f"(incident #{incident.id}, {incident.status.value}, seen {incident.count}x)")
        if incident.postmortem:
            text += f"\npostmortem: {incident.postmortem}"
        return {"text": text}
    return {"event": action.value, "incident": incident.to_dict()}


def deliver(channel: Channel, incident: Incident, action: Action,
            policy: RetryPolicy = RetryPolicy(), *,
            sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """POST the payload; retry connection errors, 408, 429 and 5xx with backoff. Never raises."""
    body = json.dumps(payload(channel, incident, action), default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "aire-notifier",
               **channel.headers}
    status: int | None = None
    error = "no attempt made"
    for attempt in range(1, policy.attempts + 1):
        request = urllib.request.Request(channel.url, data=body, headers=headers, method="POST")
        try:
            status = _post(request, policy.timeout_seconds)
            log.info("notifier %s (%s): %s incident %s delivered (HTTP %s, attempt %d)",
                     channel.name, channel.where, action.value, incident.id, status, attempt)
            return Delivery(channel.name, action.value, True, attempt, status)
        except urllib.error.HTTPError as err:
            status, error = err.code, f"HTTP {err.code}: {_snippet(err)}"
            retryable = err.code >= 500 or err.code in _RETRYABLE_4XX
        except (urllib.error.URLError, OSError) as err:
            cause = err.reason if isinstance(err, urllib.error.URLError) else err
            status, error, retryable = None, f"{type(cause).__name__}: {cause}", True
        if not retryable or attempt == policy.attempts:
            break
        wait = policy.delay(attempt)
        log.warning("notifier %s (%s): %s incident %s attempt %d/%d failed (%s); retrying in %.2fs",
                    channel.name, channel.where, action.value, incident.id, attempt,
                    policy.attempts, error, wait)
        sleep(wait)
    log.error("notifier %s (%s): %s incident %s not delivered after %d attempt(s): %s; the "
              "incident is stored and aire_incident_sweep will try again", channel.name,
              channel.where, action.value, incident.id, attempt, error)
    return Delivery(channel.name, action.value, False, attempt, status, error)


ChannelResolver = Callable[[NotifyChannel], Channel]


def notify_incident(incident: Incident, action: Action, notify: Notify, resolver: ChannelResolver,
                    store: IncidentStore | None = None, *,
                    sleep: Callable[[float], None] = time.sleep) -> list[Delivery]:
    """Send one action to every channel that wants it; never raises for a channel's failure.

    Channels below their ``min_severity`` are skipped, as is an action the timeline says
    was delivered already; acknowledge and resolve go only where a trigger went.
    """
    sent = incident.notified()
    deliveries: list[Delivery] = []
    for spec in notify.channels:
        if incident.severity.rank > Severity(spec.min_severity).rank:
            continue
        if f"{spec.label}:{action.value}" in sent or (
                action is not Action.TRIGGER and f"{spec.label}:trigger" not in sent):
            continue
        try:
            channel = resolver(spec)
        except InputError as err:  # a bad connection must not stop the other channels
            log.error("incident %s: %s", incident.id, err)
            deliveries.append(Delivery(spec.label, action.value, False, 0, error=str(err)))
            continue
        delivery = deliver(channel, incident, action, RetryPolicy.from_config(notify), sleep=sleep)
        if delivery.ok and store is not None:
            store.mark_notified(incident.id, spec.label, action.value)
        deliveries.append(delivery)
    return deliveries


def deliver_pending(store: IncidentStore, notify_by_pipeline: Mapping[str, Notify],
                    resolver: ChannelResolver, *, since: datetime, grace: timedelta,
                    now: datetime | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> list[Delivery]:
    """The outbox pass: triggers owed to active incidents, resolves owed to resolved ones.

    Incidents first seen within ``grace`` of ``now`` are left to the process that opened
    them, which may still be delivering; pipelines without a config here are skipped.
    """
    cutoff = (now or datetime.now(UTC)) - grace
    deliveries: list[Delivery] = []
    for incident in store.list(since=since):
        notify = notify_by_pipeline.get(incident.pipeline)
        if notify is None or not notify.channels:
            continue
        if incident.active and incident.first_seen > cutoff:
            continue
        action = Action.TRIGGER if incident.active else Action.RESOLVE
        deliveries += notify_incident(incident, action, notify, resolver, store, sleep=sleep)
    return deliveries


def _checked(where: str, spec: NotifyChannel, url: str, *, routing_key: str | None = None,
             headers: Mapping[str, str] | None = None) -> Channel:
    try:
        return Channel(spec.label, spec.kind, url, routing_key, dict(headers or {}))
    except InputError as err:
        raise InputError(f"{where}: {err}") from None


def _url_from_host(host: str | None, port: int | None, schema: str | None,
                   endpoint: str | None) -> str | None:
    if not host:
        return None
    base = host if "://" in host else f"{schema or 'https'}://{host}{f':{port}' if port else ''}"
    return f"{base.rstrip('/')}/{endpoint.lstrip('/')}" if endpoint else base


def _is_http_url(url: object) -> bool:
    if not isinstance(url, str) or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: following it would send the bearer token and
    the payload to whatever origin the receiver names, and turn the POST into a bodiless GET."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(_NoRedirect())


def _post(request: urllib.request.Request, timeout: float) -> int:
    """The response status within ``timeout`` seconds overall.

    urlopen's timeout bounds each socket operation: a receiver that trickles a byte a second
    keeps it waiting for ever. The request runs on a worker thread, abandoned at the deadline
    (its socket still times out on its own).
    """
    def send() -> int:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="aire-notify")
    try:
        return pool.submit(send).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"no answer within {timeout:g} s") from None
    finally:
        pool.shutdown(wait=False)


def _redact(url: object) -> str:
    """Scheme and host (and port) only: a Slack webhook's path or a URL's user:password is a secret."""
    if not isinstance(url, str):
        return repr(url)
    parts = urlsplit(url)
    if parts.scheme and parts.hostname:
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        return f"{parts.scheme}://{parts.hostname}{port}" + ("/..." if parts.path.strip("/") else "")
    return url if len(url) <= 24 else f"{url[:24]}..."


def _snippet(err: urllib.error.HTTPError) -> str:
    try:
        return err.read(300).decode("utf-8", "replace").strip() or str(err.reason)
    except OSError:
        return str(err.reason)
