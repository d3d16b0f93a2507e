"""Load: N concurrent clients each signing a different document against one server.

Starts ``countersign serve`` on a fresh data folder, creates N requirement confirmations
over the API, then N clients sign their own at once (the requester of each). Checks that
every signature landed and the ledger verifies, and that the server kept answering
``/api/health`` while signing (the event loop is never blocked); prints signatures/s and
the health-check latency during the load against an idle baseline.

    .venv/bin/python bench/load.py [--clients 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

from pipeline.config import Settings
from pipeline.documents.repository import verify_ledger
from pipeline.people.access import create_token
from pipeline.people.parties import add_party
from pipeline.people.setup import initialise

EXAMPLE = json.loads((ROOT / "tests" / "examples" / "requirement_confirmation.json")
                     .read_text(encoding="utf-8"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def health_latencies(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    samples = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/api/health")
        assert response.status_code == 200
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0.05)
    return samples


async def run(base: str, tokens: dict[str, str], documents: list[tuple[str, str]]) -> dict:
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
        started = time.perf_counter()
        codes = await asyncio.gather(*(sign(doc, party) for doc, party in documents))
        elapsed = time.perf_counter() - started
        stop.set()
        busy = await watcher
    return {"codes": codes, "elapsed": elapsed, "idle": idle, "busy": busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="countersign-load-"))
    settings = Settings(data_dir=data)
    initialise(settings)
    parties = []
    for index in range(args.clients):
        party = add_party(settings, name=f"签署人{index:02d}", dept="市场部",
                          email=f"signer{index}@example.com", issue_cert=True,
                          passphrase="demo")
        parties.append(party.id)
    tokens = {pid: create_token(settings, "party", pid) for pid in parties}
    admin = create_token(settings, "admin")
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("countersign")), "--data-dir", str(data),
         "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        documents = []
        with httpx.Client(base_url=base, timeout=600) as client:
            for pid in parties:
                response = client.post("/api/documents", headers={
                    "Authorization": f"Bearer {admin}"}, json={
                    "template": "requirement_confirmation", "data": EXAMPLE,
                    "parties": [{"role": "requester", "party": pid},
                                {"role": "receiver", "party": "lina"}]})
                assert response.status_code == 201, response.text
                documents.append((response.json()["id"], pid))
        result = asyncio.run(run(base, tokens, documents))
    finally:
        server.terminate()
        server.wait(30)
    report = verify_ledger(settings)
    errors = [code for code in result["codes"] if code != 200]
    print(f"{args.clients} clients, each signing its own document at once")
    print(f"errors: {len(errors)}   signatures/s: {args.clients / result['elapsed']:.2f}   "
          f"(all {args.clients} in {result['elapsed']:.1f} s)")
    print(f"/api/health while idle   median {1000 * statistics.median(result['idle']):6.1f} ms")
    print(f"/api/health while signing median {1000 * statistics.median(result['busy']):6.1f} ms"
          f", max {1000 * max(result['busy']):6.1f} ms ({len(result['busy'])} probes)")
    print(f"ledger verify: {'ok' if report.ok else report.problems[:3]} "
          f"({report.events} events, {report.revisions} revisions)")
    if errors or not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
