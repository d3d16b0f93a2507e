"""The durable job queue: Huey on its SQL storage (peewee), in the database kind the records
use.

- Embedded (no ``COUNTERSIGN_DATABASE_URL``): the queue is the SQLite file
  ``data/queue.db`` beside the ledger's, so that consumers polling for work never take the
  ledger's write lock.
- Scale-out (``COUNTERSIGN_DATABASE_URL=postgresql://…``): the queue's tables are in the
  same PostgreSQL database as everything else (created by the records' migrations), and
  every server and worker shares them.

A queue message only says which job or which periodic pass to run; what the job is, how far
it got and who holds it is the job record (``pipeline/record/jobs.py``). Huey's SQL storage
deletes a message when a consumer takes it, so a consumer that dies loses the message, and
the record's lease is what brings the job back (``pipeline/jobs/recovery.py``).

Messages are JSON, not Huey's default pickle: a row of the queue table must never be able to
run code in a worker, which holds the signing keys.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from huey import Huey
from huey.api import TaskWrapper
from huey.contrib.sql_huey import BytesBlobField, SqlStorage
from huey.registry import Message
from huey.serializer import Serializer
from peewee import (
    CharField,
    CompositeKey,
    Database,
    FloatField,
    IntegerField,
    Model,
    PostgresqlDatabase,
    SqliteDatabase,
    TimestampField,
)

from pipeline.config import Settings

QUEUE_NAME = "countersign"
QUEUE_FILE = "queue.db"


def queue_target(settings: Settings) -> str:
    """Return where the queue lives: the PostgreSQL URL the records use, or the path of
    the embedded queue file."""
    url = settings.database_url
    return url or str(settings.data_dir / QUEUE_FILE)


def is_shared(settings: Settings) -> bool:
    """Return True when the queue is shared by several machines (PostgreSQL)."""
    return bool(settings.database_url)


def _database(target: str) -> Database:
    """Return a peewee database for ``target`` (a postgresql:// URL or an SQLite path)."""
    if "://" not in target:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # 0600 like the ledger's file: it names the jobs
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        return SqliteDatabase(str(path), timeout=60,
                              pragmas={"journal_mode": "wal", "busy_timeout": 60000})
    from playhouse.db_url import connect

    # SQLAlchemy's spelling of the driver (postgresql+psycopg2://) means the same database.
    scheme, rest = target.split("://", 1)
    # User and password are %-escaped in a URL, as SQLAlchemy reads them.
    return connect("postgresql://" + rest if scheme.startswith("postgres") else target,
                   unquote_password=True, unquote_user=True)


class QueueStorage(SqlStorage):
    """Huey's SQL storage with its tables named ``queue_*``. On SQLite it creates them
    itself (the queue file is the queue's alone); on PostgreSQL the migration has."""

    def __init__(self, name: str = QUEUE_NAME, database: Database | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name, database=database,
                         create_tables=not isinstance(database, PostgresqlDatabase), **kwargs)

    def create_models(self):
        """Return Huey's four models (as in huey.contrib.sql_huey, Huey 3.5) under the names
        ``queue_kv``, ``queue_schedule``, ``queue_task`` and ``queue_counter``; the
        migration ``0003_jobs`` makes the same tables on PostgreSQL."""
        database = self.database

        class Base(Model):
            class Meta:
                pass

        Base._meta.database = database

        class KV(Base):
            queue = CharField()
            key = CharField()
            value = BytesBlobField()

            class Meta:
                table_name = "queue_kv"
                primary_key = CompositeKey("queue", "key")

        class Schedule(Base):
            queue = CharField()
            data = BytesBlobField()
            timestamp = TimestampField(resolution=1000)

            class Meta:
                table_name = "queue_schedule"
                indexes = ((("queue", "timestamp"), False),)

        class Task(Base):
            queue = CharField()
            data = BytesBlobField()
            priority = FloatField(default=0.0)

            class Meta:
                table_name = "queue_task"

        Task.add_index(Task.priority.desc(), Task.id)

        class Counter(Base):
            queue = CharField()
            key = CharField()
            value = IntegerField()

            class Meta:
                table_name = "queue_counter"
                primary_key = CompositeKey("queue", "key")

        return KV, Schedule, Task, Counter


class JsonSerializer(Serializer):
    """Queue messages as JSON: task name, id and plain arguments, nothing that executes."""

    def _serialize(self, data: Message) -> bytes:
        fields = data._asdict()
        for key in ("on_complete", "on_error", "chord_config"):
            if fields.get(key) is not None:
                raise ValueError(f"queue messages carry no {key}")
        for key in ("eta", "expires", "expires_resolved"):
            if isinstance(fields.get(key), datetime):
                fields[key] = {"datetime": fields[key].isoformat()}
        return json.dumps(fields, ensure_ascii=False, sort_keys=True).encode()

    def _deserialize(self, data: bytes) -> Message:
        fields = json.loads(data)
        for key, value in fields.items():
            if isinstance(value, dict) and set(value) == {"datetime"}:
                fields[key] = datetime.fromisoformat(value["datetime"])
        fields["args"] = tuple(fields.get("args") or ())
        return Message(**{key: fields.get(key) for key in Message._fields})


@dataclass
class JobQueue:
    """A Huey instance on the configured queue and its two tasks: run a job, run a pass."""

    huey: Huey
    job: TaskWrapper
    periodic: TaskWrapper

    def send_job(self, job_id: str) -> None:
        """Send the message that makes a consumer run job ``job_id``."""
        self.job(job_id)

    def send_pass(self, name: str, slot: int) -> None:
        """Send the message that makes a consumer run the pass ``name`` for ``slot``."""
        self.periodic(name, slot)

    def waiting_jobs(self) -> set[str]:
        """Return the ids of the jobs whose message waits in the queue."""
        return {task.args[0] for task in self.huey.pending()
                if isinstance(task, self.job.task_class) and task.args}

    def waiting(self) -> int:
        """Return how many messages wait in the queue."""
        return self.huey.pending_count()

    def close(self) -> None:
        self.huey.storage.close()


class Consumer(Protocol):
    """What runs the messages a consumer's queue takes (``tasks.JobContext``)."""

    def run_job(self, job_id: str) -> None: ...

    def run_pass(self, name: str, slot: int) -> None: ...


def build_queue(settings: Settings, consumer: Consumer | None = None) -> JobQueue:
    """Return a new queue on the configured storage. A consumer builds its own, whose
    messages ``consumer`` runs; one without only sends (see :func:`shared_queue`)."""
    huey = Huey(QUEUE_NAME, results=False, store_none=False, utc=True,
                serializer=JsonSerializer(), storage_class=QueueStorage,
                database=_database(queue_target(settings)))

    def job(job_id: str) -> None:
        _present(consumer).run_job(job_id)

    def periodic(name: str, slot: int) -> None:
        _present(consumer).run_pass(name, slot)

    return JobQueue(huey, huey.task(name="job")(job), huey.task(name="pass")(periodic))


def _present(consumer: Consumer | None) -> Consumer:
    if consumer is None:
        raise RuntimeError("this queue instance only sends messages")
    return consumer


_shared: dict[tuple[int, str], JobQueue] = {}
_shared_lock = threading.Lock()


def shared_queue(settings: Settings) -> JobQueue:
    """Return this process's queue for sending messages (it never runs them)."""
    key = (os.getpid(), queue_target(settings))
    with _shared_lock:
        queue = _shared.get(key)
        if queue is None:
            queue = _shared[key] = build_queue(settings)
    return queue


def send_job(settings: Settings, job_id: str) -> None:
    """Send the message that makes some consumer run job ``job_id``."""
    shared_queue(settings).send_job(job_id)


def close_shared_queues() -> None:
    """Close this process's sending connections (tests, and before exiting)."""
    with _shared_lock:
        for key in [key for key in _shared if key[0] == os.getpid()]:
            _shared.pop(key).close()
