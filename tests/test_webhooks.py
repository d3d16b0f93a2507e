"""Webhooks: every event POSTed in order, HMAC-signed, retried with backoff, never twice."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.config import Settings
from pipeline.outbound.webhooks import backoff, deliver_webhooks
from pipeline.record import database, ledger

SECRET = "s3cret"


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict, dict]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), json.loads(body), body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    Receiver.received, Receiver.status = [], 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def add_events(settings: Settings, count: int) -> None:
    with database.connection(settings.database) as conn:
        ledger.append(conn, [ledger.new_event("doc-1", "progress-entry", "t", {"i": i})
                             for i in range(count)])


def test_events_delivered_signed_in_order_once(tmp_path, receiver):
    settings = Settings(data_dir=tmp_path, webhook_urls=(receiver,), webhook_secret=SECRET)
    add_events(settings, 3)
    results = deliver_webhooks(settings)
    assert [(r.seq, r.delivered) for r in results] == [(1, True), (2, True), (3, True)]
    assert [body["seq"] for _, body, _ in Receiver.received] == [1, 2, 3]
    headers, body, raw = Receiver.received[0]
    expected = hmac.new(SECRET.encode(), headers["X-Countersign-Timestamp"].encode() + b"."
                        + raw, hashlib.sha256).hexdigest()
    assert headers["X-Countersign-Signature"] == f"sha256={expected}"
    with database.connection(settings.database) as conn:
        stored = dict(zip(database.EVENT_COLUMNS, next(database.iter_events(conn, 1, 1)),
                          strict=True))
    assert body == {**stored, "data": {"i": 0}}  # the ledger's event, hash and all
    assert headers["X-Countersign-Event"] == "progress-entry"
    assert deliver_webhooks(settings) == []  # never twice
    add_events(settings, 1)
    assert [r.seq for r in deliver_webhooks(settings)] == [4]


def test_failures_are_retried_with_backoff_and_recorded(tmp_path, receiver):
    settings = Settings(data_dir=tmp_path, webhook_urls=(receiver,), webhook_secret=SECRET)
    add_events(settings, 2)
    Receiver.status = 500
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    first = deliver_webhooks(settings, now)
    assert [(r.seq, r.delivered, r.status) for r in first] == [(1, False, "500")]  # in order
    assert deliver_webhooks(settings, now + timedelta(seconds=10)) == []  # backing off
    Receiver.status = 200
    later = deliver_webhooks(settings, now + backoff(1) + timedelta(seconds=1))
    assert [(r.seq, r.delivered) for r in later] == [(1, True), (2, True)]
    with database.connection(settings.database) as conn:
        record = database.webhook_delivery(conn, receiver, 1)
    assert record["attempts"] == 2 and record["delivered_at"] and record["last_status"] == "200"
    assert backoff(1) == timedelta(seconds=30) and backoff(3) == timedelta(seconds=120)
    assert backoff(40) == timedelta(hours=6)


def test_unreachable_url_is_an_attempt_not_a_crash(tmp_path):
    settings = Settings(data_dir=tmp_path, webhook_urls=("http://127.0.0.1:9/x",),
                        webhook_secret=SECRET)
    add_events(settings, 1)
    (result,) = deliver_webhooks(replace(settings), timeout_s=2)
    assert not result.delivered and result.status in ("ConnectError", "ConnectTimeout")


@pytest.mark.slow
def test_the_service_delivers_webhooks_on_its_own(tmp_path, receiver):
    import time

    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = Settings(data_dir=tmp_path, webhook_urls=(receiver,), webhook_secret=SECRET,
                        background_interval_s=0.2, pool_size=1)
    add_events(settings, 2)
    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 20
        while len(Receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert [body["seq"] for _, body, _ in Receiver.received] == [1, 2]


def test_a_pass_running_meanwhile_posts_nothing_twice(tmp_path, receiver):
    settings = Settings(data_dir=tmp_path, webhook_urls=(receiver,), webhook_secret=SECRET)
    add_events(settings, 3)
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    with database.connection(settings.database) as conn:
        database.queue_webhook_deliveries(conn, receiver, now.isoformat())
        # Another consumer's pass has claimed the events and is still posting them.
        claimed = database.due_webhook_deliveries(conn, receiver, now.isoformat(),
                                                  (now + timedelta(minutes=5)).isoformat())
    assert [seq for seq, _, _ in claimed] == [1, 2, 3]
    assert deliver_webhooks(settings, now + timedelta(seconds=1)) == []
    # Its lease over (that consumer died), the events go out, once each.
    later = deliver_webhooks(settings, now + timedelta(minutes=6))
    assert [(r.seq, r.delivered) for r in later] == [(1, True), (2, True), (3, True)]
