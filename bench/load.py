"""Load: N concurrent clients each signing a different document against one server; or,
with ``--hostile-verify``, N hostile verifications at once.

Signing: starts ``countersign serve`` on a fresh data folder, creates N requirement
confirmations over the API, then N clients sign their own at once (the requester of each).
Checks that every signature landed and the ledger verifies, and that the server kept
answering ``/api/health`` while signing (the event loop is never blocked); prints
signatures/s and the health-check latency during the load against an idle baseline.

Hostile verify: N clients at once send a signed page followed by 1000 empty incremental
updates (verification is quadratic in them: seconds of CPU each) to ``/api/verify`` and to
the ``/verify`` page, while ``/api/health`` is probed every 50 ms. Three servers side by
side in one run: countersign with its default budgets (the files are refused by their
revision count), countersign with the revision budget lifted (the files reach the
verification workers and run into their time budget there), and the peer — the same
verification in the request thread pool, as the service did before issue 11.

Goal for signing: at least 8 signatures/s on 2 cores with no error.

    .venv/bin/python bench/load.py [--clients 50] [--results FILE]
    .venv/bin/python bench/load.py --hostile-verify [--clients 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Row, Server, record
from pipeline.config import Settings
from pipeline.documents.repository import verify_ledger
from pipeline.people.access import create_token
from pipeline.people.parties import add_party
from pipeline.people.setup import initialise

EXAMPLE = json.loads((ROOT / "examples" / "requirement_confirmation.json")
                     .read_text(encoding="utf-8"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def health_latencies(client: httpx.AsyncClient, stop: asyncio.Event,
                           give_up_s: float | None = None) -> list[float]:
    """Probe /api/health every 50 ms until ``stop``; return the latencies. A probe still
    unanswered after ``give_up_s`` counts as that long and ends the probing."""
    samples = []
    while not stop.is_set():
        started = time.perf_counter()
        try:
            response = await client.get("/api/health", timeout=give_up_s)
        except httpx.TimeoutException:
            samples.append(time.perf_counter() - started)
            break
        assert response.status_code == 200
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0.05)
    return samples


def tree_cpu_seconds(root: int) -> float:
    """Return the CPU time (user + system) used so far by ``root`` and its descendants."""
    parents, times = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = int(fields[11]) + int(fields[12])
    family, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return sum(times.get(pid, 0) for pid in family) / os.sysconf("SC_CLK_TCK")


async def run(base: str, tokens: dict[str, str], documents: list[tuple[str, str]],
              server_pid: int) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        idle_stop = asyncio.Event()
        idle_task = asyncio.create_task(health_latencies(client, idle_stop))
        await asyncio.sleep(1.0)
        idle_stop.set()
        idle = await idle_task

        async def sign(document: str, party: str) -> int:
            response = await client.post(
                f"/api/documents/{document}/sign", json={"passphrase": "demo"},
                headers={"Authorization": f"Bearer {tokens[party]}"})
            return response.status_code

        stop = asyncio.Event()
        watcher = asyncio.create_task(health_latencies(client, stop))
        started, cpu = time.perf_counter(), tree_cpu_seconds(server_pid)
        codes = await asyncio.gather(*(sign(doc, party) for doc, party in documents))
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds(server_pid) - cpu
        stop.set()
        busy = await watcher
    return {"codes": codes, "elapsed": elapsed, "idle": idle, "busy": busy, "cpu": cpu}



def start_server(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start a server on a free port; return it and its base URL once it answers."""
    port = free_port()
    server = subprocess.Popen([*command, str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/api/health", timeout=2)
            return server, base
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# The peer: verification in the request thread pool, as the service did before issue 11
# (its health check, a plain function, shares that pool).
PEER = """
import sys
from pathlib import Path
import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from pipeline.audit.verify import verify_bytes
from pipeline.config import Settings
settings = Settings(data_dir=Path(sys.argv[1]))
app = FastAPI()
@app.get("/api/health")
def health():
    return {"status": "ok"}
@app.post("/api/verify")
async def verify(request: Request):
    return await run_in_threadpool(verify_bytes, settings, await request.body())
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


async def hostile_flood(base: str, hostile: bytes, clients: int, auditor: str,
                        party: str | None, window_s: float) -> dict:
    """Send ``clients`` hostile verifications at once (half to /verify as a signed-in party
    when ``party`` is given); probe health meanwhile. Stops waiting after ``window_s``."""
    async with httpx.AsyncClient(base_url=base, timeout=window_s + 30) as client, \
            httpx.AsyncClient(base_url=base, timeout=window_s + 30) as browser:
        idle_stop = asyncio.Event()
        idle_task = asyncio.create_task(health_latencies(client, idle_stop))
        await asyncio.sleep(2.0)
        idle_stop.set()
        idle = await idle_task
        if party:
            page = await browser.get("/login")
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            await browser.post("/login", data={"token": party, "csrf_token": token})
            csrf = (await browser.get("/verify")).text.split(
                'name="csrf_token" value="')[1].split('"')[0]

        async def one(index: int) -> str:
            try:
                if party and index % 2:
                    response = await browser.post("/verify", data={"csrf_token": csrf},
                                                  files={"file": ("h.pdf", hostile)})
                    return f"page {response.status_code}"
                response = await client.post("/api/verify", content=hostile,
                                             headers={"Authorization": f"Bearer {auditor}"})
                if response.status_code != 200:
                    return f"api {response.status_code}"
                problems = " ".join(response.json()["problems"])
                return ("api 200 revision budget" if "revisions" in problems else
                        "api 200 time budget" if "budget" in problems else "api 200 verified")
            except httpx.TimeoutException:
                return "unanswered"

        stop = asyncio.Event()
        watcher = asyncio.create_task(health_latencies(client, stop, give_up_s=window_s))
        started = time.perf_counter()
        flood = asyncio.gather(*(one(i) for i in range(clients)))
        try:
            outcomes = await asyncio.wait_for(asyncio.shield(flood), window_s)
        except TimeoutError:
            outcomes = ["unanswered after the window"] * clients
        elapsed = time.perf_counter() - started
        stop.set()
        busy = await watcher
        flood.cancel()
        with contextlib.suppress(BaseException):  # the peer's unanswered requests
            await flood
    return {"idle": idle, "busy": busy, "elapsed": elapsed, "outcomes": outcomes}


def _ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def hostile_verify(clients: int) -> None:
    """Run the hostile-verify comparison and print it."""
    from collections import Counter

    from tests.support.hostile import signed_blank, with_empty_updates

    data = Path(tempfile.mkdtemp(prefix="countersign-hostile-"))
    settings = Settings(data_dir=data / "data")
    initialise(settings)
    hostile = with_empty_updates(signed_blank(settings), 1000)
    auditor = create_token(settings, "auditor")
    party = create_token(settings, "party", "lina")
    countersign = [str(Path(sys.executable).with_name("countersign")), "--data-dir",
                   str(settings.data_dir), "serve", "--port"]
    quiet = {"COUNTERSIGN_POOL_SIZE": "1", "COUNTERSIGN_BACKGROUND_INTERVAL": "0"}
    runs = [
        ("countersign, default budgets", countersign, quiet, party, 60.0),
        ("countersign, revision budget lifted", countersign,
         {**quiet, "COUNTERSIGN_VERIFY_MAX_REVISIONS": "5000",
          "COUNTERSIGN_VERIFY_TIMEOUT": "5"}, None, 120.0),
        ("peer: verify in the thread pool", [sys.executable, "-c", PEER,
                                             str(settings.data_dir)], {}, None, 30.0),
    ]
    print(f"{clients} hostile verifications at once: a signed page + 1000 empty updates "
          f"({len(hostile) // 1024} KB), /api/health probed every 50 ms")
    print(f"{'server':<38} {'health idle p50':>15} {'busy p50':>9} {'p95':>8} "
          f"{'max':>8}   outcomes")
    results = {}
    for label, command, env, page_party, window in runs:
        server, base = start_server(command, env)
        try:
            time.sleep(8)  # let LibreOffice's warm start settle before the idle baseline
            result = asyncio.run(hostile_flood(base, hostile, clients, auditor, page_party,
                                               window))
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:  # the peer may be too busy to stop politely
                server.kill()
                server.wait(30)
        results[label] = result
        outcomes = ", ".join(f"{n}× {k}" for k, n in Counter(result["outcomes"]).items())
        print(f"{label:<38} {_ms(result['idle'], .5):>12.1f} ms {_ms(result['busy'], .5):>6.1f}"
              f" ms {_ms(result['busy'], .95):>5.0f} ms {_ms(result['busy'], 1):>5.0f} ms   "
              f"{outcomes} (in {result['elapsed']:.0f} s)")
    ours = results["countersign, revision budget lifted"]["busy"]
    peer = results["peer: verify in the thread pool"]["busy"]
    print(f"health p95 under the flood, peer / countersign (workers busy): "
          f"{_ms(peer, .95) / max(_ms(ours, .95), 0.1):.0f}×; "
          f"max: {_ms(peer, 1) / max(_ms(ours, 1), 0.1):.0f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--hostile-verify", action="store_true",
                        help="Flood verification with hostile PDFs instead of signing.")
    parser.add_argument("--results", type=Path, help="append summary rows here (JSON lines)")
    args = parser.parse_args()
    if args.hostile_verify:
        hostile_verify(args.clients or 40)
        return
    args.clients = args.clients or 50
    data = Path(tempfile.mkdtemp(prefix="countersign-load-"))
    try:
        run_load(data, args.clients, args.results)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def run_load(data: Path, clients: int, results: Path | None) -> None:
    settings = Settings(data_dir=data)
    initialise(settings)
    parties = []
    for index in range(clients):
        party = add_party(settings, name=f"签署人{index:02d}", dept="市场部",
                          email=f"signer{index}@example.com", issue_cert=True,
                          passphrase="demo")
        parties.append(party.id)
    tokens = {pid: create_token(settings, "party", pid) for pid in parties}
    admin = create_token(settings, "admin")
    with Server(data) as server:
        documents = []
        with httpx.Client(base_url=server.base, timeout=600) as client:
            for pid in parties:
                response = client.post("/api/documents", headers={
                    "Authorization": f"Bearer {admin}"}, json={
                    "template": "requirement_confirmation", "data": EXAMPLE,
                    "parties": [{"role": "requester", "party": pid},
                                {"role": "receiver", "party": "lina"}]})
                assert response.status_code == 201, response.text
                documents.append((response.json()["id"], pid))
        result = asyncio.run(run(server.base, tokens, documents, server.process.pid))
    report = verify_ledger(settings)
    errors = [code for code in result["codes"] if code != 200]
    rate = clients / result["elapsed"]
    print(f"{clients} clients, each signing its own document at once, {os.cpu_count()} cores")
    print(f"errors: {len(errors)}   signatures/s: {rate:.2f}   "
          f"(all {clients} in {result['elapsed']:.1f} s)")
    per_signature = result["cpu"] / clients
    print(f"server CPU per signature: {1000 * per_signature:.0f} ms (all its processes; "
          f"{os.cpu_count()} cores free for it would make {os.cpu_count() / per_signature:.1f} "
          f"signatures/s); machine load average {os.getloadavg()[0]:.1f}")
    print(f"/api/health while idle   median {1000 * statistics.median(result['idle']):6.1f} ms")
    print(f"/api/health while signing median {1000 * statistics.median(result['busy']):6.1f} ms"
          f", max {1000 * max(result['busy']):6.1f} ms ({len(result['busy'])} probes)")
    print(f"ledger verify: {'ok' if report.ok else report.problems[:3]} "
          f"({report.events} events, {report.revisions} revisions)")
    record(Row(f"API under {clients} concurrent signers ({os.cpu_count()} cores)",
               f"{rate:.2f} signatures/s, {len(errors)} errors", "-", f"{rate:.2f}/s",
               "≥ 8/s, 0 errors", rate >= 8 and not errors and report.ok), results)
    if errors or not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
