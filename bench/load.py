"""Load: N concurrent clients each signing a different document against one server.

Starts ``countersign serve`` on a fresh data folder, creates N requirement confirmations
over the API, then N clients sign their own at once (the requester of each). Checks that
every signature landed and the ledger verifies, and that the server kept answering
``/api/health`` while signing (the event loop is never blocked); prints signatures/s and
the health-check latency during the load against an idle baseline.

Goal: at least 8 signatures/s on 2 cores with no error.

    .venv/bin/python bench/load.py [--clients 50] [--results FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
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

EXAMPLE = json.loads((ROOT / "tests" / "examples" / "requirement_confirmation.json")
                     .read_text(encoding="utf-8"))


async def health_latencies(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    samples = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/api/health")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--results", type=Path, help="append summary rows here (JSON lines)")
    args = parser.parse_args()
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
