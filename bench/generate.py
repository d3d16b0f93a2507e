"""Benchmark: generating documents, against LibreOffice's own batch mode, in one run.

(1) ``countersign bulk`` of N forms (start-up included: the command as a user runs it, from
    a JSONL file to N PDF/A-2b files) against LibreOffice's batch mode converting the same N
    rendered .docx to PDF/A-2b in one process, with the export options the pool uses:
    ``soffice --headless --convert-to 'pdf:writer_pdf_Export:{"SelectPdfVersion":…2,…}'``
    (its profile made beforehand, so it pays no first-start cost). Alternating; medians.
    Also printed, not a goal: the batch mode given the pool's own LibreOffice set-up (a
    profile that records its version, so no graphics self-tests at start; the pool's fonts),
    to show what the set-up is worth and what the pool and its parallelism add.
(2) What the PDF/A-2b export costs: the same batch mode exporting plain PDF.
(3) LibreOffice's resident memory over M conversions through the pool: the resident set of
    each worker's process group, sampled as the conversions go; bounded by recycling.

    .venv/bin/python bench/generate.py [--documents 100] [--rounds 3] [--conversions 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BIN, Row, alternate, cpu_of_run, median, record
from pipeline.config import Settings
from pipeline.forms.manifest import get_template
from pipeline.forms.validate import validate_form
from pipeline.render.docx import render_docx
from pipeline.render.fonts import fontconfig_file
from pipeline.render.generation import converter_pool
from pipeline.render.office_profile import profile_settings, profile_xcu

TEMPLATE = "requirement_confirmation"
EXAMPLE = json.loads((ROOT / "examples" / f"{TEMPLATE}.json")
                     .read_text(encoding="utf-8"))
# The filter options of the pool's bridge (pipeline/render/uno_bridge.py, PDF_FILTER).
PDF_A_2B = ('pdf:writer_pdf_Export:{"SelectPdfVersion":{"type":"long","value":"2"},'
            '"ExportBookmarks":{"type":"boolean","value":"false"},'
            '"ExportNotes":{"type":"boolean","value":"false"}}')


def forms(count: int) -> list[dict]:
    """Return ``count`` forms, each a little different."""
    return [EXAMPLE | {"background": f"{EXAMPLE['background']}（第 {index + 1} 份）"}
            for index in range(count)]


def render_all(rows: list[dict], folder: Path) -> list[Path]:
    """Render every form to a .docx in ``folder``, as bulk renders them."""
    template = get_template(TEMPLATE)
    folder.mkdir(parents=True)
    paths = []
    for index, form in enumerate(rows):
        path = folder / f"doc-{index:03d}.docx"
        path.write_bytes(render_docx(template, validate_form(template, form),
                                     f"2026-市场-{index + 1:03d}"))
        paths.append(path)
    return paths


def soffice_batch(paths: list[Path], out: Path, profile: Path, target: str,
                  env: dict[str, str] | None = None) -> float:
    """Convert ``paths`` in one soffice; return the CPU seconds it used."""
    shutil.rmtree(out, ignore_errors=True)
    cpu = cpu_of_run(["soffice", "--headless", "--norestore",
                      f"-env:UserInstallation={profile.as_uri()}", "--convert-to", target,
                      "--outdir", str(out), *map(str, paths)],
                     env={**os.environ, **(env or {})})
    assert len(list(out.glob("*.pdf"))) == len(paths)
    return cpu


def bench_bulk(work: Path, count: int, rounds: int, results: Path | None) -> None:
    """Run (1) and (2)."""
    rows = forms(count)
    rows_file = work / "rows.jsonl"
    rows_file.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                         encoding="utf-8")
    paths = render_all(rows, work / "docx")
    profile = work / "profile"
    soffice_batch(paths[:1], work / "first", profile, PDF_A_2B)  # the peer's profile, once
    tuned, fonts = tuned_profile(profile, work / "tuned")
    data = work / "data"
    runs = iter(range(10 ** 6))
    cpu_ours: list[float] = []
    cpu_peer: list[float] = []
    cpu_tuned: list[float] = []

    def ours() -> None:
        out = work / f"bulk-{next(runs)}"
        cpu_ours.append(cpu_of_run([str(BIN / "countersign"), "--data-dir", str(data), "bulk",
                                    TEMPLATE, "--rows", str(rows_file), "--out", str(out)]))
        assert len(list(out.glob("*.pdf"))) == count
        shutil.rmtree(out)

    def batch_pdfa() -> None:
        cpu_peer.append(soffice_batch(paths, work / "batch", profile, PDF_A_2B))

    def batch_plain() -> None:
        soffice_batch(paths, work / "plain", profile, "pdf")

    def batch_tuned() -> None:
        cpu_tuned.append(soffice_batch(paths, work / "tuned-out", tuned, PDF_A_2B, fonts))

    mine, theirs, plain, set_up = alternate(ours, batch_pdfa, batch_plain, batch_tuned,
                                            rounds=rounds)
    a, b, c, d = median(mine), median(theirs), median(plain), median(set_up)
    print(f"(1) {count} forms, {rounds} rounds, {os.cpu_count()} cores: countersign bulk "
          f"median {a:.2f} s ({count / a:.1f} documents/s, start-up included); "
          f"soffice --convert-to PDF/A-2b median {b:.2f} s ({count / b:.1f} documents/s)")
    record(Row(f"countersign bulk of {count} forms vs soffice batch PDF/A-2b (start-up "
               "included)", f"{a:.2f} s", f"{b:.2f} s", f"{b / a:.2f}× faster", "≥ 1.8× faster",
               b / a >= 1.8), results)
    cores = os.cpu_count() or 1
    mine_cpu, peer_cpu = median(cpu_ours), median(cpu_peer)
    print(f"    CPU used (every process, median): countersign bulk {mine_cpu:.2f} s, "
          f"batch mode {peer_cpu:.2f} s; with {cores} cores to itself bulk could be at most "
          f"{cores * peer_cpu / mine_cpu:.2f}× faster (the batch mode uses one core)")
    print(f"    batch mode given the pool's LibreOffice set-up (profile, fonts; not a goal): "
          f"median {d:.2f} s, CPU {median(cpu_tuned):.2f} s; ratio {d / a:.2f}")
    print(f"(2) PDF/A-2b export in batch mode: {b:.2f} s against {c:.2f} s for plain PDF "
          f"({100 * (b - c) / c:+.0f}%)")


def tuned_profile(profile: Path, tuned: Path) -> tuple[Path, dict[str, str]]:
    """Return a copy of the batch mode's ``profile`` with the pool's settings added (the
    recorded version among them), and the environment that gives it the pool's fonts."""
    shutil.copytree(profile, tuned)
    xcu = tuned / "user" / "registrymodifications.xcu"
    items = profile_xcu(profile_settings("soffice")).split("\n", 2)[2]  # the items alone
    text = xcu.read_text(encoding="utf-8").replace("</oor:items>", items)
    xcu.write_text(text, encoding="utf-8")
    conf = fontconfig_file()
    return tuned, {"FONTCONFIG_FILE": str(conf)} if conf else {}


def group_rss_mb(pgid: int) -> float:
    """Return the resident memory of process group ``pgid`` in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def bench_memory(work: Path, conversions: int, results: Path | None) -> None:
    """Run (3): the pool's workers' resident memory as the conversions go."""
    blobs = [path.read_bytes() for path in sorted((work / "docx").glob("*.docx"))]
    settings = Settings(data_dir=work / "data")
    pool = converter_pool(settings, warm=False).start()
    samples: list[tuple[int, float]] = []
    every = max(1, conversions // 20)
    try:
        with ThreadPoolExecutor(max_workers=pool.spec.workers) as executor:
            for start in range(0, conversions, every):
                batch = [blobs[i % len(blobs)] for i in range(start, start + every)]
                list(executor.map(pool.convert, batch))
                rss = [group_rss_mb(w.pid) for w in pool.workers() if w.pid]
                samples.append((start + every, max(rss, default=0.0)))
    finally:
        pool.close()
    recycle, workers = pool.spec.recycle_after, pool.spec.workers
    life = recycle * workers  # conversions until every worker has been replaced once
    print(f"(3) LibreOffice resident memory, {conversions} conversions, {workers} workers, "
          f"each replaced after {recycle} conversions (largest worker, MB, by conversions "
          "done):")
    print("    " + "  ".join(f"{n}:{mb:.0f}" for n, mb in samples))
    early = max(mb for n, mb in samples if n <= life)
    late = max(mb for n, mb in samples if n > conversions - life)
    bounded = late <= early * 1.15
    record(Row(f"LibreOffice RSS over {conversions} conversions (largest worker)",
               f"≤ {late:.0f} MB (last {life})", f"≤ {early:.0f} MB (first {life})",
               f"{late / early:.2f}×", "flat (≤ 1.15×)", bounded), results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conversions", type=int, default=1000)
    parser.add_argument("--results", type=Path, help="append summary rows here (JSON lines)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="countersign-bench-generate-"))
    try:
        started = time.perf_counter()
        bench_bulk(work, args.documents, args.rounds, args.results)
        if args.conversions:
            bench_memory(work, args.conversions, args.results)
        print(f"({time.perf_counter() - started:.0f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
