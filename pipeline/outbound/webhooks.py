"""Webhooks: every ledger event is POSTed, in order, to each configured URL.

The body is the event as JSON; ``X-Countersign-Signature: sha256=<hex>`` is HMAC-SHA256 of
``<timestamp>.<body>`` under the deployment's secret, with the timestamp in
``X-Countersign-Timestamp`` (receivers reject stale ones). A delivery that fails is retried
with exponential backoff (30 s, 1 min, 2 min, … up to 6 h); every attempt is recorded and a
delivered event is never sent again. The ``webhook_deliveries`` rows are the webhooks'
outbox: an event commits with its step, delivery follows in the background pass.

Webhooks without a secret are refused outright (``require_webhook_secret``, checked when
the service starts and before every pass): an empty HMAC key would let anyone forge events.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from pipeline.config import Settings
from pipeline.errors import BadInput
from pipeline.record import database

FIRST_RETRY_S = 30
LONGEST_RETRY_S = 6 * 3600


class WebhookSecretMissing(BadInput):
    code = "webhook_secret_missing"


def require_webhook_secret(settings: Settings) -> None:
    """Raise WebhookSecretMissing when webhooks are configured without a secret."""
    if settings.webhook_urls and not settings.webhook_secret:
        raise WebhookSecretMissing(
            "已配置 COUNTERSIGN_WEBHOOKS 但没有 COUNTERSIGN_WEBHOOK_SECRET：拒绝发送无签名的事件",
            "COUNTERSIGN_WEBHOOKS is set but COUNTERSIGN_WEBHOOK_SECRET is empty: events "
            "would be signed with an empty key; set a secret (or unset the webhooks)")


@dataclass(frozen=True)
class DeliveryResult:
    url: str
    seq: int
    delivered: bool
    status: str


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the ``X-Countersign-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                   hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def backoff(attempts: int) -> timedelta:
    """Return how long to wait after the ``attempts``-th failed attempt."""
    return timedelta(seconds=min(LONGEST_RETRY_S, FIRST_RETRY_S * 2 ** max(0, attempts - 1)))


def deliver_webhooks(settings: Settings, now: datetime | None = None,
                     timeout_s: float = 10.0) -> list[DeliveryResult]:
    """Run one delivery pass for every configured URL; return what was attempted.

    WebhookSecretMissing when URLs are configured without a secret. An event that cannot
    be sent, for whatever reason, is a failed attempt on record, never an exception."""
    require_webhook_secret(settings)
    now = now or datetime.now(UTC)
    stamp = now.isoformat()
    results: list[DeliveryResult] = []
    with database.connection(settings.database) as conn, \
            httpx.Client(timeout=timeout_s) as client:
        for url in settings.webhook_urls:
            database.queue_webhook_deliveries(conn, url, stamp)
            # Claimed for as long as the pass could take to post them all.
            lease = (now + timedelta(seconds=timeout_s * 101)).isoformat()
            claimed = database.due_webhook_deliveries(conn, url, stamp, lease)
            for position, (seq, attempts, event) in enumerate(claimed):
                timestamp = str(int(now.timestamp()))
                try:
                    body = json.dumps({**event, "data": json.loads(event["data"])},
                                      ensure_ascii=False).encode("utf-8")
                    response = client.post(url, content=body, headers={
                        "Content-Type": "application/json",
                        "X-Countersign-Timestamp": timestamp,
                        "X-Countersign-Signature": signature(settings.webhook_secret,
                                                             timestamp, body),
                        "X-Countersign-Event": event["kind"]})
                    ok, status = response.is_success, str(response.status_code)
                except Exception as exc:  # noqa: BLE001 - an attempt on record, never a crash
                    ok, status = False, type(exc).__name__
                retry = (now + backoff(attempts + 1)).isoformat()
                database.record_webhook_attempt(conn, url, seq, status,
                                                stamp if ok else None, retry)
                results.append(DeliveryResult(url, seq, ok, status))
                if not ok:
                    # Keep the order: later events wait for this one, due again at once.
                    database.release_webhook_claims(
                        conn, url, [later for later, _, _ in claimed[position + 1:]], lease,
                        stamp)
                    break
    return results
