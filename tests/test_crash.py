"""Crash safety: SIGKILL at every named point of create, sign and close; after a restart the
ledger verifies, nothing stored is lost or half-written, and repeating the command completes
the step exactly once."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from pipeline.config import Settings
from pipeline.documents.repository import document_status
from tests.support import processes
from tests.support.cli import COUNTERSIGN, environment
from tests.support.forms import example
from tests.support.sql import sql

pytestmark = pytest.mark.slow  # the commands render and convert with LibreOffice


def run(settings: Settings, *args: str, crash_at: str | None = None):
    # The command's scratch files, LibreOffice profiles included, go under the test's own
    # folder: that marks the processes it starts as this test's.
    scratch = settings.data_dir.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    # A killed creation's number goes to the next document at once (no lease to wait out).
    env = environment(settings, COUNTERSIGN_PASSPHRASE="demo", TMPDIR=str(scratch),
                      COUNTERSIGN_NUMBER_LEASE_MINUTES="0")
    env.pop("COUNTERSIGN_CRASH_AT", None)
    if crash_at:
        env["COUNTERSIGN_CRASH_AT"] = crash_at
    result = subprocess.run([COUNTERSIGN, "--data-dir", str(settings.data_dir), *args],
                            capture_output=True, text=True, env=env, timeout=300)
    if crash_at:
        # Killed, the command could not close its LibreOffice pool: its workers are
        # orphans now (re-parented to pytest), which a real crash would leave too.
        processes.stop(processes.leftovers(str(scratch)))
    return result


def kinds(settings: Settings) -> list[str]:
    return [row[0] for row in sql(settings.database, "SELECT kind FROM events ORDER BY seq")]


def assert_ledger_ok(settings: Settings) -> None:
    result = run(settings, "ledger", "verify", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["ok"]


@pytest.fixture
def settings(backend_settings: Settings, tmp_path) -> Settings:
    """Crash tests run on SQLite and on PostgreSQL."""
    settings = backend_settings
    form = tmp_path / "form.json"
    form.write_text(json.dumps(example("requirement_confirmation"), ensure_ascii=False),
                    encoding="utf-8")
    return settings


def create_args(settings: Settings) -> list[str]:
    return ["create", "requirement_confirmation", "--data",
            str(settings.data_dir.parent / "form.json"), "--party", "requester=zhangwei",
            "--party", "receiver=lina", "--request-key", "req-1", "--json"]


@pytest.mark.parametrize("point", ["store:before-rename", "create:after-store",
                                   "create:after-ledger"])
def test_create_survives_a_kill(settings, point):
    killed = run(settings, *create_args(settings), crash_at=point)
    assert killed.returncode == -signal.SIGKILL
    assert_ledger_ok(settings)
    again = run(settings, *create_args(settings))
    assert again.returncode == 0, again.stderr
    assert kinds(settings).count("created") == 1
    # Killed before or after recording, the document has the first number: no gap.
    assert json.loads(again.stdout)["number"].endswith("-市场-001")
    repeat = run(settings, *create_args(settings))
    assert json.loads(repeat.stdout)["id"] == json.loads(again.stdout)["id"]
    assert kinds(settings).count("created") == 1
    assert_ledger_ok(settings)
    leftovers = [p for p in (settings.data_dir / "store").rglob("*") if p.is_file()
                 and not p.name.endswith(".bin")]
    assert all(p.name.endswith(".tmp") for p in leftovers)  # never mistaken for a revision


@pytest.mark.parametrize("point", ["sign:after-store", "sign:after-ledger"])
def test_sign_survives_a_kill(settings, point):
    doc = json.loads(run(settings, *create_args(settings)).stdout)["id"]
    killed = run(settings, "sign", doc, "--as", "zhangwei", crash_at=point)
    assert killed.returncode == -signal.SIGKILL
    assert_ledger_ok(settings)
    again = run(settings, "sign", doc, "--as", "zhangwei")
    if point == "sign:after-ledger":
        assert again.returncode == 2 and "already signed" in again.stderr
    else:
        assert again.returncode == 0, again.stderr
    assert kinds(settings).count("signed") == 1
    assert [s.party for s in document_status(settings, doc).signed] == ["zhangwei"]
    assert_ledger_ok(settings)


@pytest.mark.parametrize("point", ["close:after-store", "close:after-closed",
                                   "close:after-package"])
def test_close_survives_a_kill(settings, point):
    doc = json.loads(run(settings, *create_args(settings)).stdout)["id"]
    for party in ("zhangwei", "lina"):
        assert run(settings, "sign", doc, "--as", party).returncode == 0
    killed = run(settings, "close", doc, crash_at=point)
    assert killed.returncode == -signal.SIGKILL
    assert_ledger_ok(settings)
    again = run(settings, "close", doc, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "closed"
    assert kinds(settings).count("closed") == 1 and kinds(settings).count("archived") == 1
    assert_ledger_ok(settings)
