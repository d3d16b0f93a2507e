"""Settings: where the data folder is and how the pipeline behaves, from the environment.

One frozen dataclass; the CLI's ``--data-dir`` and the service read the same thing. This is
the only module that reads the environment: what is not a setting of the service (a key
passphrase, the debug and crash-point switches of the command line and the tests) is read
by the small functions at the end, when it is needed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    timezone: str = "Asia/Shanghai"
    pool_size: int = 0  # 0: one LibreOffice per core
    conversion_timeout_s: float = 60.0
    conversions_per_process: int = 200
    # An enterprise's own trust roots (PEM bundle), trusted beside the local CA, and its RFC
    # 3161 timestamp authority; empty: the local CA's own TSA.
    trust_roots_file: Path | None = None
    tsa_url: str = ""
    # Reminders and escalations: SMTP relay, sender, and the address links point to.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    mail_from: str = "countersign@localhost"
    base_url: str = "http://127.0.0.1:8000"
    # A reminder goes out this long before a party's due time.
    remind_before_hours: float = 4.0
    # Document events are POSTed to these URLs, signed with HMAC-SHA256 under the secret.
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str = ""
    # How often the service runs follow-up and webhook delivery (0: never).
    background_interval_s: float = 300.0
    # Uploaded PDFs (and bulk rows) larger than this are refused before they are read.
    max_upload_bytes: int = 50 * 1024 * 1024
    # URL prefixes (scheme://host[:port]/path) that validation may fetch revocation data and
    # issuer certificates from. Empty: it never fetches, whatever a certificate names —
    # the URLs in an uploaded document are the uploader's choice.
    fetch_allow: tuple[str, ...] = ()
    # Web sessions end this long after sign-in, or after this long unused.
    session_hours: float = 12.0
    session_idle_minutes: float = 30.0
    # Verification of untrusted PDFs: worker processes (0: half the cores, at least one),
    # a time (and CPU) budget per file, a revision and object budget, and for anonymous
    # callers a rate ("N/second|minute|hour") and a concurrency cap per client.
    verify_workers: int = 0
    verify_timeout_s: float = 30.0
    verify_max_revisions: int = 100
    verify_max_objects: int = 100_000
    verify_rate: str = "10/minute"
    verify_per_client: int = 2
    # Where rate-limit counters live: memory:// (one process) or e.g. redis://host:6379.
    rate_limit_storage: str = "memory://"
    # Request bodies other than files are refused past this size, before they are parsed.
    max_json_bytes: int = 2 * 1024 * 1024
    # Where revisions and archives live: empty for ``data/store`` on local disk, or
    # ``s3://bucket[/prefix]`` for an S3-compatible object store (MinIO, Ceph RGW, AWS S3)
    # reached at ``s3_endpoint`` (empty: AWS itself) with the standard AWS credentials.
    store_url: str = ""
    # Where the records live: empty for SQLite in the data folder, or a SQLAlchemy URL such
    # as ``postgresql://user@host/db`` shared by every server and worker.
    database_url: str = field(default="", repr=False)
    s3_endpoint: str = ""
    s3_region: str = ""
    # Unset keys let boto3 look further (shared config file, instance role); the secrets are
    # kept out of repr() so that a logged Settings never shows them.
    # The local CA's key passphrase (required with a shared store); empty: the random one
    # `init` keeps beside the CA's keys in the embedded default (data/keys/ca/…).
    ca_passphrase: str = field(default="", repr=False)
    aws_access_key_id: str = field(default="", repr=False)
    aws_secret_access_key: str = field(default="", repr=False)
    aws_session_token: str = field(default="", repr=False)
    # The chain head is timestamped by the TSA once this many events are unanchored, or once
    # the oldest unanchored event is this many minutes old (0 turns a rule off); the tokens
    # are kept locked in the store this many years.
    # A number reserved for a document that was never recorded (its process was killed)
    # goes to the next document after this long.
    number_lease_minutes: float = 15.0
    anchor_every_events: int = 1000
    anchor_every_minutes: float = 60.0
    anchor_retention_years: int = 10
    # The job queue: how many jobs a consumer runs at once; whether ``serve`` runs a consumer
    # itself (None: yes with the embedded database, no with PostgreSQL, where ``countersign
    # worker`` processes do); how long a running job's lease lasts without a heartbeat
    # before another consumer takes the job over; how long an idle consumer waits, at most,
    # before it looks for work again.
    worker_concurrency: int = 2
    serve_worker: bool | None = None
    job_lease_s: float = 60.0
    queue_poll_s: float = 1.0

    @property
    def database_path(self) -> Path:
        return self.data_dir / "countersign.db"

    @property
    def database(self) -> str:
        """The database to connect to: the configured URL, or the SQLite file's path."""
        return self.database_url or str(self.database_path)

    @property
    def ca_dir(self) -> Path:
        """Where older data folders kept the local CA (now in the store: record.keyring)."""
        return self.data_dir / "ca"

    @property
    def keys_dir(self) -> Path:
        """Where older data folders kept the party keys (the embedded store's keys/ too)."""
        return self.data_dir / "keys"

    @property
    def fonts_dir(self) -> Path:
        return self.data_dir / "fonts"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_data_dir(self, data_dir: Path) -> Settings:
        return replace(self, data_dir=data_dir)


# Libraries that log what they handle (pyHanko logs every rejected revision and every
# untrusted path with a full traceback) while the application reports the outcome itself.
LIBRARY_LOGGERS = ("pyhanko", "pyhanko_certvalidator", "pypdf", "pdfminer", "fontTools",
                   "PIL", "asyncio", "aiohttp", "certomancer", "py.warnings")


def configure_logging(verbose: bool = False) -> None:
    """Send the application's warnings to stderr, one line each; the libraries' logs (and
    Python warnings) only when ``verbose``, with their tracebacks. Idempotent."""
    logging.captureWarnings(True)
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "countersign", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.countersign = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(logging.Formatter(
        "%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"))
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.CRITICAL + 1)


def load_settings(data_dir: str | os.PathLike | None = None) -> Settings:
    """Return Settings from arguments, then ``COUNTERSIGN_*`` variables, then defaults."""
    env = os.environ
    return Settings(
        data_dir=Path(data_dir or env.get("COUNTERSIGN_DATA") or "data").resolve(),
        timezone=env.get("COUNTERSIGN_TIMEZONE", "Asia/Shanghai"),
        ca_passphrase=env.get("COUNTERSIGN_CA_PASSPHRASE", ""),
        pool_size=int(env.get("COUNTERSIGN_POOL_SIZE", "0")),
        conversion_timeout_s=float(env.get("COUNTERSIGN_CONVERSION_TIMEOUT", "60")),
        conversions_per_process=int(env.get("COUNTERSIGN_CONVERSIONS_PER_PROCESS", "200")),
        trust_roots_file=Path(env["COUNTERSIGN_TRUST_ROOTS"]) if env.get(
            "COUNTERSIGN_TRUST_ROOTS") else None,
        tsa_url=env.get("COUNTERSIGN_TSA_URL", ""),
        smtp_host=env.get("COUNTERSIGN_SMTP_HOST", "127.0.0.1"),
        smtp_port=int(env.get("COUNTERSIGN_SMTP_PORT", "25")),
        mail_from=env.get("COUNTERSIGN_MAIL_FROM", "countersign@localhost"),
        base_url=env.get("COUNTERSIGN_BASE_URL", "http://127.0.0.1:8000"),
        remind_before_hours=float(env.get("COUNTERSIGN_REMIND_BEFORE_HOURS", "4")),
        webhook_urls=_listed(env.get("COUNTERSIGN_WEBHOOKS", "")),
        webhook_secret=env.get("COUNTERSIGN_WEBHOOK_SECRET", ""),
        background_interval_s=float(env.get("COUNTERSIGN_BACKGROUND_INTERVAL", "300")),
        max_upload_bytes=int(env.get("COUNTERSIGN_MAX_UPLOAD_BYTES", str(50 * 1024 * 1024))),
        fetch_allow=_listed(env.get("COUNTERSIGN_FETCH_ALLOW", "")),
        session_hours=float(env.get("COUNTERSIGN_SESSION_HOURS", "12")),
        session_idle_minutes=float(env.get("COUNTERSIGN_SESSION_IDLE_MINUTES", "30")),
        verify_workers=int(env.get("COUNTERSIGN_VERIFY_WORKERS", "0")),
        verify_timeout_s=float(env.get("COUNTERSIGN_VERIFY_TIMEOUT", "30")),
        verify_max_revisions=int(env.get("COUNTERSIGN_VERIFY_MAX_REVISIONS", "100")),
        verify_max_objects=int(env.get("COUNTERSIGN_VERIFY_MAX_OBJECTS", "100000")),
        verify_rate=env.get("COUNTERSIGN_VERIFY_RATE", "10/minute"),
        verify_per_client=int(env.get("COUNTERSIGN_VERIFY_PER_CLIENT", "2")),
        rate_limit_storage=env.get("COUNTERSIGN_RATE_LIMIT_STORAGE", "memory://"),
        max_json_bytes=int(env.get("COUNTERSIGN_MAX_JSON_BYTES", str(2 * 1024 * 1024))),
        store_url=env.get("COUNTERSIGN_STORE_URL", "").strip(),
        database_url=env.get("COUNTERSIGN_DATABASE_URL", "").strip(),
        s3_endpoint=env.get("COUNTERSIGN_S3_ENDPOINT", "").strip(),
        s3_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", ""),
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", ""),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", ""),
        aws_session_token=env.get("AWS_SESSION_TOKEN", ""),
        number_lease_minutes=float(env.get("COUNTERSIGN_NUMBER_LEASE_MINUTES", "15")),
        anchor_every_events=int(env.get("COUNTERSIGN_ANCHOR_EVERY_EVENTS", "1000")),
        anchor_every_minutes=float(env.get("COUNTERSIGN_ANCHOR_EVERY_MINUTES", "60")),
        anchor_retention_years=int(env.get("COUNTERSIGN_ANCHOR_RETENTION_YEARS", "10")),
        worker_concurrency=int(env.get("COUNTERSIGN_WORKER_CONCURRENCY", "2")),
        serve_worker=_switch(env.get("COUNTERSIGN_SERVE_WORKER", "")),
        job_lease_s=float(env.get("COUNTERSIGN_JOB_LEASE", "60")),
        queue_poll_s=float(env.get("COUNTERSIGN_QUEUE_POLL", "1")),
    )


def _listed(text: str) -> tuple[str, ...]:
    """Return the non-empty items of a comma-separated variable."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _switch(text: str) -> bool | None:
    """Return True/False for a yes/no variable (1/0, true/false, yes/no, on/off), None when
    it is empty (the default applies)."""
    value = text.strip().lower()
    if not value:
        return None
    return value in ("1", "true", "yes", "on")


def passphrase_from_environment() -> str | None:
    """Return ``COUNTERSIGN_PASSPHRASE`` (a key passphrase for unattended signing), or None
    when it is unset or empty. Never kept in Settings, which travel to worker processes."""
    return os.environ.get("COUNTERSIGN_PASSPHRASE") or None


def debug_enabled() -> bool:
    """Return True when ``COUNTERSIGN_DEBUG`` asks the command line to show tracebacks."""
    return bool(os.environ.get("COUNTERSIGN_DEBUG"))


def crash_point_name() -> str | None:
    """Return the crash point ``COUNTERSIGN_CRASH_AT`` names (tests only), or None."""
    return os.environ.get("COUNTERSIGN_CRASH_AT")
