"""What the benchmarks share: alternating runs, medians, a running server, the results file.

Every figure is a ratio against an outside peer, measured side by side in one run: ours and
the peer's alternate (a b, b a, a b, …) so that noise from other work on the machine falls on
both, and medians are compared.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(function: Callable[[], object]) -> float:
    """Return the seconds ``function()`` took."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def alternate(*functions: Callable[[], object], rounds: int) -> list[list[float]]:
    """Return the seconds of each function, ``rounds`` runs each, interleaved: every round
    runs each once, in an order rotated from round to round (a b, b a for two)."""
    samples: list[list[float]] = [[] for _ in functions]
    order = list(range(len(functions)))
    for index in range(rounds):
        turn = order[index % len(order):] + order[:index % len(order)]
        for which in (turn if index % 2 == 0 else reversed(turn)):
            samples[which].append(timed(functions[which]))
    return samples


def run_quietly(args: list[str], **kwargs) -> None:
    """Run a command; raise with its output if it fails."""
    result = subprocess.run(args, capture_output=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {result.returncode}: "
                           f"{result.stderr.decode(errors='replace')[-2000:]}")


def cpu_of_run(args: list[str], **kwargs) -> float:
    """Run a command; return the CPU time (user + system) it and every process it started
    used, sampled from /proc while they run (LibreOffice's processes are not reaped by the
    command, so its own rusage would miss them). Raises if the command fails."""
    ticks: dict[int, int] = {}
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               **kwargs)
    family = {process.pid}
    while process.poll() is None:
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        grew = True
        while grew:
            more = {pid for pid, (parent, _) in stats.items() if parent in family} - family
            family |= more
            grew = bool(more)
        for pid in family & stats.keys():
            ticks[pid] = stats[pid][1]
        time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {process.returncode}: "
                           f"{process.stderr.read().decode(errors='replace')[-2000:]}")
    return sum(ticks.values()) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Row:
    """One line of the summary table: our median against the peer's."""

    what: str
    ours: str
    peer: str
    ratio: str
    goal: str
    met: bool


def record(row: Row, results: Path | None) -> None:
    """Print ``row`` and append it to the ``results`` file (JSON lines) when given."""
    print(f"  -> {row.what}: {row.ratio}  (goal {row.goal}: {'met' if row.met else 'NOT met'})")
    if results is not None:
        with results.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms"


def median(samples: list[float]) -> float:
    return statistics.median(samples)


class Server:
    """``countersign serve`` on a data folder, as a user starts it; stopped with SIGTERM."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(BIN / "countersign"), "--data-dir", str(data_dir), "serve", "--port",
             str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "COUNTERSIGN_BACKGROUND_INTERVAL": "0", **(env or {})})
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{self.base}/api/health", timeout=2)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def median_timed(function: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Return the median seconds of ``repeat`` calls of ``function`` and its last result."""
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result
