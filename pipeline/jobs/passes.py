"""The periodic passes — follow-up (reminders, escalation, deemed consent), mail and webhook
delivery, the ledger anchor when due, stalled-job recovery — each run once per slot across
every server and worker.

Every consumer's scheduler ticks (Huey's scheduler thread, once a second). A slot is a
pass's interval counted since the epoch; at each new slot the scheduler tries to insert
``(pass, slot)`` into the records, and only the one that inserted it sends the pass's
message, which some consumer then runs. A pass that fails is logged and recorded on its
slot; the next slot runs it again (each pass catches up on everything due).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from huey.consumer import Scheduler

from pipeline.config import Settings
from pipeline.jobs.record import stamp, utc_now
from pipeline.record import database
from pipeline.record import jobs as records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pass:
    """A periodic pass: its name, what it runs, and how often (seconds; 0: never)."""

    name: str
    run: Callable[[Settings], object]
    every: Callable[[Settings], float]


def _follow_up(settings: Settings) -> object:
    from pipeline.documents.followup import follow_up

    return follow_up(settings)


def _mail(settings: Settings) -> object:
    from pipeline.outbound.outbox import deliver_mail

    return deliver_mail(settings)


def _webhooks(settings: Settings) -> object:
    from pipeline.outbound.webhooks import deliver_webhooks

    return deliver_webhooks(settings)


def _anchor(settings: Settings) -> object:
    from pipeline.record.anchors import anchor_if_due

    return anchor_if_due(settings)


def _recover(settings: Settings) -> object:
    from pipeline.jobs.recovery import recover_stalled

    return recover_stalled(settings)


def _background(settings: Settings) -> float:
    return max(0.0, settings.background_interval_s)


def _recovery(settings: Settings) -> float:
    # Twice per lease: a stalled job waits at most a lease and a half to be taken over.
    return max(1.0, settings.job_lease_s / 2)


PASSES: dict[str, Pass] = {p.name: p for p in (
    Pass("follow-up", _follow_up, _background),
    Pass("mail", _mail, _background),
    Pass("webhooks", _webhooks, _background),
    Pass("anchor", _anchor, _background),
    Pass("recover", _recover, _recovery),
)}


def run_pass(context, name: str, slot: int) -> None:
    """Run the pass ``name`` for ``slot`` (claimed by the scheduler that sent it) and record
    how it ended; a failure is logged, never raised."""
    found = PASSES.get(name)
    if found is None:
        log.error("unknown periodic pass %r", name)
        return
    problem = None
    try:
        found.run(context.settings)
    except Exception as exc:  # noqa: BLE001 - the next slot runs the pass again
        log.exception("periodic pass %s failed", name)
        problem = f"{type(exc).__name__}: {exc}"
    try:
        with database.connection(context.settings.database) as conn:
            records.finish_slot(conn, name, slot, stamp(utc_now()), problem)
    except database.DatabaseError:
        log.warning("could not record the end of pass %s", name, exc_info=True)


def claim_due_passes(settings: Settings, owner: str, last: dict[str, int],
                     now: float | None = None) -> list[tuple[str, int]]:
    """Return the (pass, slot) pairs this consumer claimed at ``now``: for each pass whose
    slot changed since ``last`` (updated in place), the slot if no one had claimed it."""
    moment = time.time() if now is None else now
    claimed = []
    with database.connection(settings.database) as conn:
        for name, periodic in PASSES.items():
            every = periodic.every(settings)
            if every <= 0:
                continue
            slot = int(moment // every)
            if last.get(name) == slot:
                continue
            last[name] = slot
            if records.claim_slot(conn, name, slot, owner, stamp(utc_now())):
                claimed.append((name, slot))
    return claimed


class PassScheduler(Scheduler):
    """Huey's scheduler (delayed tasks) that also claims the periodic passes' slots and
    sends the passes it claimed."""

    def __init__(self, *args, context, queue, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.context, self.queue = context, queue
        self.last: dict[str, int] = {}

    def loop(self, now=None):
        try:
            for name, slot in claim_due_passes(self.context.settings, self.context.owner.id,
                                               self.last):
                self.queue.send_pass(name, slot)
        except Exception:  # noqa: BLE001 - the database may be away for a moment
            log.exception("claiming the periodic passes failed")
        return super().loop(now)
