"""Notifiers against a real HTTP receiver on 127.0.0.1: payloads, retries, bad URLs.

The outbox (``deliver_pending``) and the hook that notifies after storing run on both
databases in test_incident_sources.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aire.config import ChannelKind, Notify, NotifyChannel
from aire.errors import InputError
from aire.incidents.notifiers import (
    Action,
    Channel,
    RetryPolicy,
    channel_from_connection,
    deliver,
    notify_incident,
)
from aire.incidents.store import Incident, IncidentSource, IncidentStore, Severity
from tests.support.loopback import Receiver, closed_port_url

PD = NotifyChannel(kind=ChannelKind.PAGERDUTY, conn_id="aire_pagerduty", name="oncall")
SLACK = NotifyChannel(kind=ChannelKind.SLACK, conn_id="aire_slack", min_severity="low")
HOOK = NotifyChannel(kind=ChannelKind.WEBHOOK, conn_id="aire_webhook")
SOURCE = IncidentSource(kind="task_failure", dag_id="aire_retrain", run_id="r1",
                        task_id="fine_tune", try_number=3)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    with IncidentStore(f"sqlite:///{tmp_path / 'incidents.db'}") as opened:
        yield opened


def _incident(store: IncidentStore, severity: Severity = Severity.HIGH) -> Incident:
    incident, _ = store.record("k-" + severity.value, pipeline="credit-risk",
                               title="fine_tune failed", severity=severity, source=SOURCE,
                               evidence={"exception": "CUDA out of memory"})
    return incident


def _resolver(connections: dict[str, dict[str, Any]]) -> Any:
    """What the Airflow glue does, with connection fields from a dict instead of Airflow."""
    return lambda spec: channel_from_connection(spec, **connections[spec.conn_id])


def _notify(*channels: NotifyChannel, attempts: int = 3) -> Notify:
    return Notify(channels=list(channels), attempts=attempts, backoff_seconds=0.5,
                  timeout_seconds=5)


def test_pagerduty_gets_trigger_then_resolve_with_the_same_dedup_key(
        receiver: Receiver, store: IncidentStore) -> None:
    incident = _incident(store)
    resolve = _resolver({"aire_pagerduty": {"host": f"{receiver.url}/v2/enqueue",
                                            "password": "R0UT1NGKEY"}})
    notify = _notify(PD)
    [trigger] = notify_incident(incident, Action.TRIGGER, notify, resolve, store)
    resolved = store.resolve(incident.id, "sre", "restarted on a bigger node")
    [resolution] = notify_incident(store.get(resolved.id), Action.RESOLVE, notify, resolve, store)
    assert trigger.ok and resolution.ok and trigger.status == 202
    first, second = receiver.bodies()
    assert [first["event_action"], second["event_action"]] == ["trigger", "resolve"]
    assert first["dedup_key"] == second["dedup_key"] == incident.dedup_key
    assert first["routing_key"] == second["routing_key"] == "R0UT1NGKEY"
    assert first["payload"]["severity"] == "error" and first["payload"]["component"] == "credit-risk"
    assert first["payload"]["custom_details"]["source"]["try_number"] == 3
    assert "payload" not in second  # PagerDuty's resolve takes the key alone
    assert {r["path"] for r in receiver.requests} == {"/v2/enqueue"}
    assert store.get(incident.id).notified() == {"oncall:trigger", "oncall:resolve"}
    # Sent is sent: a second pass (the sweep's outbox) sends nothing again.
    assert notify_incident(store.get(incident.id), Action.RESOLVE, notify, resolve, store) == []
    assert len(receiver.requests) == 2


def test_receiver_that_fails_twice_then_succeeds(receiver: Receiver, store: IncidentStore) -> None:
    receiver.script(503, 500)
    slept: list[float] = []
    channel = Channel("hook", ChannelKind.WEBHOOK, receiver.url)
    delivery = deliver(channel, _incident(store), Action.TRIGGER,
                       RetryPolicy(attempts=4, backoff_seconds=0.5), sleep=slept.append)
    assert delivery.ok and delivery.attempts == 3 and delivery.status == 202
    assert slept == [0.5, 1.0]  # exponential backoff between the three tries
    assert [r["answered"] for r in receiver.requests] == [503, 500, 202]
    assert receiver.bodies()[0] == receiver.bodies()[2]  # the same event each time


def test_unreachable_receiver_logs_each_retry_and_keeps_the_incident(
        store: IncidentStore, caplog: pytest.LogCaptureFixture) -> None:
    incident = _incident(store)
    resolve = _resolver({"aire_pagerduty": {"host": closed_port_url(), "password": "KEY"}})
    slept: list[float] = []
    with caplog.at_level(logging.WARNING, logger="aire.incidents.notifiers"):
        [delivery] = notify_incident(incident, Action.TRIGGER, _notify(PD), resolve, store,
                                     sleep=slept.append)
    assert not delivery.ok and delivery.attempts == 3 and delivery.status is None
    assert "ConnectionRefusedError" in (delivery.error or "")
    messages = [r.getMessage() for r in caplog.records]
    assert any("attempt 1/3 failed" in m for m in messages)
    assert any("attempt 2/3 failed" in m for m in messages)
    assert any("not delivered after 3 attempt(s)" in m and "sweep" in m for m in messages)
    assert slept == [0.5, 1.0]
    kept = store.get(incident.id)
    assert kept.count == 1 and kept.notified() == set()  # still owed: the outbox will send it


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "hooks.example.com/services/T/B/X",
                                 "http://", "https://exa mple.com/x", "http://host:port/x"])
def test_bad_url_is_a_clear_error_naming_the_connection(url: str) -> None:
    with pytest.raises(InputError, match=r"notify channel 'aire_webhook' \(connection "
                                         r"'aire_webhook'\).*not an http\(s\) URL") as caught:
        channel_from_connection(HOOK, host=None, extra={"url": url})
    assert "/T/B/X" not in str(caught.value)  # a webhook path is a secret


def test_a_bad_channel_does_not_stop_the_others(receiver: Receiver, store: IncidentStore) -> None:
    resolve = _resolver({"aire_pagerduty": {"host": "not a url", "password": "KEY"},
                         "aire_webhook": {"host": receiver.url}})
    deliveries = notify_incident(_incident(store), Action.TRIGGER, _notify(PD, HOOK), resolve,
                                 store)
    assert [(d.channel, d.ok, d.attempts) for d in deliveries] == [
        ("oncall", False, 0), ("aire_webhook", True, 1)]
    assert "not an http(s) URL" in (deliveries[0].error or "")


def test_client_errors_are_not_retried(receiver: Receiver, store: IncidentStore) -> None:
    receiver.script(400)
    channel = Channel("pd", ChannelKind.PAGERDUTY, receiver.url, routing_key="bad")
    delivery = deliver(channel, _incident(store), Action.TRIGGER, RetryPolicy(attempts=4),
                       sleep=lambda _s: pytest.fail("a 400 must not be retried"))
    assert not delivery.ok and delivery.attempts == 1 and delivery.status == 400
    assert "boom" in (delivery.error or "")


def test_slack_and_webhook_payloads(receiver: Receiver, store: IncidentStore,
                                    caplog: pytest.LogCaptureFixture) -> None:
    incident = store.set_postmortem(_incident(store).id, "s3://pm/2026-credit-risk-1.md")
    resolve = _resolver({
        "aire_slack": {"host": receiver.url, "password": "T000/B000/S3CR3T"},
        "aire_webhook": {"host": "127.0.0.1", "port": int(receiver.url.rsplit(":", 1)[1]),
                         "schema": "http", "password": "tok",
                         "extra": {"endpoint": "/hooks/aire", "headers": {"X-Team": "ml"}}}})
    with caplog.at_level(logging.INFO, logger="aire.incidents.notifiers"):
        notify_incident(incident, Action.TRIGGER, _notify(SLACK, HOOK), resolve, store)
    slack, hook = receiver.requests
    assert slack["path"] == "/T000/B000/S3CR3T"
    assert slack["json"]["text"].startswith(":rotating_light: *trigger* [high] fine_tune failed")
    assert "s3://pm/2026-credit-risk-1.md" in slack["json"]["text"]
    assert hook["path"] == "/hooks/aire" and hook["headers"]["Authorization"] == "Bearer tok"
    assert hook["headers"]["X-Team"] == "ml"
    assert hook["json"]["event"] == "trigger" and hook["json"]["incident"]["id"] == incident.id
    assert hook["json"]["incident"]["pipeline"] == "credit-risk"
    assert "S3CR3T" not in caplog.text  # logs show the host, never the webhook path


def test_severity_floor_and_no_resolve_without_a_trigger(receiver: Receiver,
                                                         store: IncidentStore) -> None:
    resolve = _resolver({"aire_pagerduty": {"host": receiver.url, "password": "KEY"},
                         "aire_slack": {"host": receiver.url, "password": "T/B/X"}})
    low = _incident(store, Severity.LOW)
    sent = notify_incident(low, Action.TRIGGER, _notify(PD, SLACK), resolve, store)
    assert [d.channel for d in sent] == ["aire_slack"]  # PagerDuty wants medium and up
    high = _incident(store, Severity.HIGH)
    assert notify_incident(high, Action.RESOLVE, _notify(PD), resolve, store) == []
    assert len(receiver.requests) == 1


def test_retry_delays_double_and_are_capped() -> None:
    policy = RetryPolicy(attempts=6, backoff_seconds=1, max_backoff_seconds=5)
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_pagerduty_defaults_to_the_public_endpoint_and_needs_a_key() -> None:
    channel = channel_from_connection(PD, host=None, password="KEY")
    assert channel.url == "https://events.pagerduty.com/v2/enqueue" and channel.routing_key == "KEY"
    with pytest.raises(InputError, match="PagerDuty needs a routing key"):
        channel_from_connection(PD, host=None, password=None)
    with pytest.raises(InputError, match="no URL"):
        channel_from_connection(HOOK, host=None)


def test_glue_reads_the_airflow_connection(receiver: Receiver,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from aire_airflow.connections import notifier_channel

    monkeypatch.setenv("AIRFLOW_CONN_AIRE_PAGERDUTY", json.dumps(
        {"conn_type": "pagerduty_events", "host": f"{receiver.url}/v2/enqueue",
         "password": "R0UT1NGKEY"}))
    channel = notifier_channel(PD)
    assert channel.url == f"{receiver.url}/v2/enqueue" and channel.routing_key == "R0UT1NGKEY"
    with pytest.raises(InputError, match="cannot read Airflow connection 'aire_missing'"):
        notifier_channel(NotifyChannel(kind=ChannelKind.SLACK, conn_id="aire_missing"))


# --- attacks (issue 13, case 9) -------------------------------------------------------------------
class _Answering:
    """A loopback server whose handler is given: a redirector, a trickler."""

    def __init__(self, handler: type) -> None:
        import http.server
        import threading

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> _Answering:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_redirect_is_not_followed_with_the_token_nor_counted_as_delivered(
        store: IncidentStore, receiver: Receiver) -> None:
    from http.server import BaseHTTPRequestHandler

    elsewhere = receiver.url

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(302)
            self.send_header("Location", elsewhere)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self.do_POST()

        def log_message(self, *args: Any) -> None:
            pass

    with _Answering(Redirect) as redirector:
        channel = Channel("hook", ChannelKind.WEBHOOK, redirector.url, headers={"Authorization": "Bearer s3cr3t"})
        result = deliver(channel, _incident(store), Action.TRIGGER, RetryPolicy(attempts=1))
    assert not result.ok and result.status == 302
    assert receiver.bodies() == []  # nothing, and no token, reached the other origin


def test_the_timeout_is_a_deadline_for_the_whole_request(store: IncidentStore) -> None:
    import time
    from http.server import BaseHTTPRequestHandler

    class Trickle(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(30):  # a header byte every 0.5 s: each socket read is quick enough
                self.wfile.write(b"X")
                self.wfile.flush()
                time.sleep(0.5)

        def log_message(self, *args: Any) -> None:
            pass

    with _Answering(Trickle) as slow:
        started = time.monotonic()
        result = deliver(Channel("hook", ChannelKind.WEBHOOK, slow.url), _incident(store), Action.TRIGGER,
                         RetryPolicy(attempts=1, timeout_seconds=1.0))
        took = time.monotonic() - started
    assert not result.ok and "within 1 s" in str(result.error)
    assert took < 3, took


def test_a_password_in_the_url_never_reaches_an_error_message() -> None:
    with pytest.raises(InputError) as caught:
        Channel("hook", ChannelKind.WEBHOOK, "ftp://user:hunter2@example.com")
    assert "hunter2" not in str(caught.value)
    from aire.incidents.notifiers import _redact

    assert _redact("https://user:hunter2@hooks.example.com") == "https://hooks.example.com"
    assert _redact("https://user:hunter2@hooks.example.com:8443/T0/B1/xyz") == "https://hooks.example.com:8443/..."
