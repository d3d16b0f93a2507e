"""The service at this stage: health and templates, in-process and as `countersign serve`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from api.app import create_app
from pipeline.config import Settings
from tests.conftest import TEMPLATE_KEYS


def test_health_and_templates(tmp_path):
    client = TestClient(create_app(Settings(data_dir=tmp_path)))
    assert client.get("/api/health").json()["status"] == "ok"
    keys = {item["key"] for item in client.get("/api/templates").json()}
    assert keys == set(TEMPLATE_KEYS)
    one = client.get("/api/templates/meeting_minutes").json()
    assert one["title"] == "会议纪要" and one["version"] == 1


def test_unknown_template_is_a_json_404(tmp_path):
    client = TestClient(create_app(Settings(data_dir=tmp_path)))
    response = client.get("/api/templates/nope")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "unknown_template" and "未知模板" in body["zh"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_countersign_serve_answers(tmp_path):
    port = _free_port()
    exe = str(Path(sys.executable).with_name("countersign"))
    server = subprocess.Popen([exe, "--data-dir", str(tmp_path), "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/templates", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert response.status_code == 200
        assert len(response.json()) == 4
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
    finally:
        server.terminate()
        server.wait(10)
