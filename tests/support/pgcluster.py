"""A private, throwaway PostgreSQL cluster for the tests on a machine where none answers on
127.0.0.1:5432: Debian's server binaries (``make test`` installs the ``postgresql`` package
when they are missing), ``initdb`` into a new folder, trust authentication, listening on
loopback only; stopped and removed afterwards.

The server runs as a child of its owner and gets SIGQUIT (immediate shutdown) if the owner
dies without stopping it, so no PostgreSQL outlives the test run that started it. As root it
runs as the ``postgres`` user (PostgreSQL refuses to run as root), so its folder is made in
the system's temporary folder, not in the test run's own, which only root may enter.

Also a command, to start one by hand or around another command::

    python -m tests.support.pgcluster [--port N] [-- COMMAND ...]

which prints the server's URL and, with a command, runs it with
``COUNTERSIGN_TEST_POSTGRES_URL`` set to that URL, then stops the server (exit status: the
command's); without one it serves until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2

from tests.support.net import free_port

DEFAULT_PORT = 5432
URL_VARIABLE = "COUNTERSIGN_TEST_POSTGRES_URL"
# Outside the test run's own folder (see above); /tmp is open to every user.
PARENT = Path("/tmp")
PR_SET_PDEATHSIG = 1
# A throwaway cluster needs no durability: a crashed server's data is thrown away anyway.
SERVER_SETTINGS = {"listen_addresses": "127.0.0.1", "unix_socket_directories": "",
                   "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                   "max_connections": "200"}


class ClusterError(RuntimeError):
    """The private cluster could not be made or started; the message says why."""


def server_binaries() -> Path | None:
    """Return the folder of the newest PostgreSQL server binaries (Debian's
    ``/usr/lib/postgresql/<major>/bin``, else ``initdb`` on the PATH), or None."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                    key=lambda path: int(re.sub(r"\D", "", path.parent.parent.name) or 0))
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def port_is_free(port: int) -> bool:
    """Return True when nothing listens on 127.0.0.1:``port`` (right now)."""
    with socket.socket() as sock:
        # As PostgreSQL does: a port only in TIME_WAIT is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _server_user() -> pwd.struct_passwd | None:
    """Return the account the server runs as: ``postgres`` when we are root, else None (our
    own account)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterError("PostgreSQL refuses to run as root and there is no postgres "
                           "user; install Debian's postgresql package") from None


def _run_as(user: pwd.struct_passwd | None) -> dict:
    """Return the Popen arguments that run a command as ``user`` (None: as ourselves)."""
    return {} if user is None else {"user": user.pw_uid, "group": user.pw_gid,
                                    "extra_groups": []}


def _die_with(parent: int):
    """Return a function run in the server's process before it starts: it asks the kernel
    for SIGQUIT when ``parent`` dies (after the change of user, which would clear it)."""
    def arrange() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGQUIT, 0, 0, 0)
        if os.getppid() != parent:  # the owner died before the request took effect
            os._exit(1)
    return arrange


def _initdb(binaries: Path, data: Path, user: pwd.struct_passwd | None) -> None:
    """Make an empty cluster in ``data``: superuser ``postgres``, trust, UTF-8."""
    done = subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--no-locale", "--no-sync"],
        cwd=data.parent, capture_output=True, text=True, **_run_as(user))
    if done.returncode:
        raise ClusterError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")


def _wait_ready(process: subprocess.Popen, url: str, log: Path, timeout_s: float) -> None:
    """Return once the server accepts connections at ``url``; raise ClusterError with the
    end of its log if it exits or does not answer within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg2.connect(url, connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise ClusterError("the private PostgreSQL did not start: "
                                   + (" | ".join(tail) or "no log")) from None
            time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    """Stop the server: fast shutdown (ends its sessions), immediate after 30 s, then kill."""
    for sig, wait_s in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)
            return


def _remove_stale(parent: Path, older_than_s: float = 600) -> None:
    """Remove the folders of private clusters whose owner was killed (SIGKILL leaves them):
    no server runs in them and they were last changed more than ``older_than_s`` ago."""
    for folder in parent.glob("countersign-pg-*"):
        try:
            pid = int((folder / "data" / "postmaster.pid").read_text().split()[0])
            running = str(folder) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                errors="replace")
        except (OSError, ValueError, IndexError):
            running = False
        with contextlib.suppress(OSError):
            if not running and time.time() - folder.stat().st_mtime > older_than_s:
                shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def private_cluster(port: int | None = None, parent: Path = PARENT,
                    timeout_s: float = 60) -> Iterator[str]:
    """Make and start a private cluster on 127.0.0.1:``port`` (default: 5432 when free, else
    a free port); yield the URL of its ``postgres`` database as user ``postgres``; stop it
    and remove its folder afterwards."""
    binaries = server_binaries()
    if binaries is None:
        raise ClusterError("no PostgreSQL server binaries (initdb) on this machine; "
                           "`make test` installs Debian's postgresql package")
    if port is None:
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    user = _server_user()
    _remove_stale(parent)
    folder = Path(tempfile.mkdtemp(prefix="countersign-pg-", dir=parent))
    try:
        if user is not None:
            os.chown(folder, user.pw_uid, user.pw_gid)
        data, log = folder / "data", folder / "server.log"
        _initdb(binaries, data, user)
        settings = [arg for name, value in SERVER_SETTINGS.items()
                    for arg in ("-c", f"{name}={value}")]
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [str(binaries / "postgres"), "-D", str(data), "-p", str(port), *settings],
                cwd=folder, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True, preexec_fn=_die_with(os.getpid()), **_run_as(user))
        try:
            url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            _wait_ready(process, url, log, timeout_s)
            yield url
        finally:
            _stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run a private cluster around a command (or until interrupted); return the exit
    status."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.pgcluster",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="default: 5432 when free, else any free")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- COMMAND ...: run it with " + URL_VARIABLE + " set")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    signal.signal(signal.SIGTERM, _interrupt)  # stops the server as Ctrl-C does
    try:
        with private_cluster(args.port) as url:
            print(f"PostgreSQL: {url}", flush=True)
            if command:
                return subprocess.run(command, env={**os.environ, URL_VARIABLE: url}).returncode
            signal.pause()
    except ClusterError as error:
        print(f"pgcluster: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
