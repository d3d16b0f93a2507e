"""`countersign generate` and `countersign bulk` through the real command and LibreOffice."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import COUNTERSIGN
from tests.support.forms import example
from tests.support.pdf import pdf_text

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COUNTERSIGN_DATA": str(data_dir), "COUNTERSIGN_POOL_SIZE": "2"}
    return subprocess.run([COUNTERSIGN, *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


def write_json(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.slow
def test_generate_numbers_and_writes_a_pdf(tmp_path):
    form = write_json(tmp_path / "form.json", example("requirement_confirmation"))
    first = run("generate", "requirement_confirmation", "--data", str(form), "--out",
                str(tmp_path / "a.pdf"), "--json", data_dir=tmp_path / "data")
    assert first.returncode == 0, first.stderr
    number = json.loads(first.stdout)["number"]
    assert number.endswith("-市场-001")
    assert number in pdf_text(tmp_path / "a.pdf")
    second = run("generate", "requirement_confirmation", "--data", str(form), "--out",
                 str(tmp_path / "b.pdf"), data_dir=tmp_path / "data")
    assert second.returncode == 0 and "-市场-002" in second.stdout
    draft = run("generate", "requirement_confirmation", "--data", str(form), "--out",
                str(tmp_path / "c.pdf"), "--draft", data_dir=tmp_path / "data")
    assert "-市场-草稿" in draft.stdout and "-市场-草稿" in pdf_text(tmp_path / "c.pdf")


def test_generate_unknown_template_is_one_line_exit_2(tmp_path):
    form = write_json(tmp_path / "form.json", {})
    result = run("generate", "nope", "--data", str(form), "--out", str(tmp_path / "x.pdf"),
                 data_dir=tmp_path / "data")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown template 'nope'" in result.stderr


@pytest.mark.slow
def test_bulk_jsonl_reports_bad_lines_and_completes_the_rest(tmp_path):
    good = example("issue_tracking")
    bad = example("issue_tracking") | {"due": "soon"}
    lines = [json.dumps(good, ensure_ascii=False), json.dumps(bad, ensure_ascii=False),
             "{not json", json.dumps(good | {"responsible_dept": "运维部"}, ensure_ascii=False)]
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run("bulk", "issue_tracking", "--rows", str(rows), "--out", str(out), "--json",
                 data_dir=tmp_path / "data")
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["succeeded"], summary["failed"]) == (2, 2)
    by_line = {r["line"]: r for r in summary["results"]}
    assert "due" in by_line[2]["error"] and "日期格式错误" in by_line[2]["error"]
    assert "invalid JSON" in by_line[3]["error"]
    # Bulk output is never tracked: drafts, no official numbers taken from the sequence.
    assert sorted(p.name for p in out.glob("*.pdf")) == sorted(
        f"{by_line[n]['number']}-{n}.pdf" for n in (1, 4))
    assert by_line[1]["number"].endswith("-研发-草稿") and "运维-草稿" in by_line[4]["number"]
    created = run("generate", "issue_tracking", "--data",
                  str(write_json(tmp_path / "form.json", good)), "--out",
                  str(tmp_path / "one.pdf"), "--json", data_dir=tmp_path / "data")
    assert json.loads(created.stdout)["number"].endswith("-研发-001")


@pytest.mark.slow
def test_bulk_csv_with_dotted_and_json_columns(tmp_path):
    rows = tmp_path / "rows.csv"
    with rows.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["requester.dept", "requester.name", "receiver.dept", "receiver.name",
                         "background", "details", "expected_delivery", "priority"])
        writer.writerow(["市场部", "张伟", "产品部", "李娜", "提升留存", '["积分规则"]',
                         "2024-06-30", "高"])
        writer.writerow(["市场部", "张伟", "产品部", "李娜", "缺优先级", '["x"]',
                         "2024-06-30", "最高"])
        writer.writerow(["市场部", "张伟", "产品部", "李娜", "列表坏了", "[oops",
                         "2024-06-30", "中"])
    out = tmp_path / "out"
    result = run("bulk", "requirement_confirmation", "--rows", str(rows), "--out", str(out),
                 data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert "line 3: priority" in result.stderr
    assert "line 4:" in result.stderr and "details" in result.stderr
    assert "1 generated, 2 failed" in result.stdout
    (pdf,) = out.glob("*.pdf")
    assert "积分规则" in pdf_text(pdf)


def test_bulk_rejects_unknown_file_type(tmp_path):
    rows = tmp_path / "rows.txt"
    rows.write_text("x", encoding="utf-8")
    result = run("bulk", "issue_tracking", "--rows", str(rows), "--out", str(tmp_path / "o"),
                 data_dir=tmp_path / "data")
    assert result.returncode == 2 and "unsupported rows file" in result.stderr


@pytest.mark.slow
def test_bulk_shows_a_progress_bar_on_a_terminal(tmp_path):
    import pty

    rows = tmp_path / "rows.jsonl"
    line = json.dumps(example("progress_sync"), ensure_ascii=False)
    rows.write_text(f"{line}\n{line}\n{line}\n", encoding="utf-8")
    leader, follower = pty.openpty()
    env = {**os.environ, "COUNTERSIGN_DATA": str(tmp_path / "data"),
           "COUNTERSIGN_POOL_SIZE": "1"}
    proc = subprocess.Popen([COUNTERSIGN, "bulk", "progress_sync", "--rows", str(rows),
                             "--out", str(tmp_path / "out")], stdout=subprocess.PIPE,
                            stderr=follower, env=env, cwd=ROOT)
    os.close(follower)
    out, _ = proc.communicate(timeout=300)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    os.close(leader)
    assert proc.returncode == 0
    assert "3/3" in terminal.decode() and "100%" in terminal.decode()
    assert "3 generated, 0 failed" in out.decode()
