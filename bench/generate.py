"""Benchmark: the same rendered documents converted three ways, measured in one run.

(a) the warm pool (pipeline.conversion.ConverterPool), as many workers as cores;
(b) LibreOffice's own batch mode: one ``soffice --headless --convert-to pdf`` over all files;
(c) one cold ``soffice`` process per document.

Prints documents/s for each and the ratios a/b and a/c. Absolute times on a shared machine
are noise; the ratios, measured side by side, are the figures that count.

    .venv/bin/python bench/generate.py [--documents 52] [--cold 52]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import load_settings
from pipeline.forms.manifest import list_templates
from pipeline.forms.validate import validate_form
from pipeline.render.docx import render_docx
from pipeline.render.generation import converter_pool
from pipeline.render.libreoffice import PoolSpec

EXAMPLES = ROOT / "examples"


def render_documents(count: int, folder: Path) -> list[Path]:
    """Render ``count`` documents (the four templates in turn) into ``folder``."""
    templates = list_templates()
    paths = []
    for index in range(count):
        template = templates[index % len(templates)]
        form = validate_form(template, json.loads(
            (EXAMPLES / f"{template.key}.json").read_text(encoding="utf-8")))
        path = folder / f"doc-{index:03d}.docx"
        path.write_bytes(render_docx(template, form, f"BENCH-{index:03d}"))
        paths.append(path)
    return paths


def bench_pool(paths: list[Path]) -> tuple[float, float]:
    """Return (start-up seconds, conversion seconds) for the warm pool."""
    started = time.perf_counter()
    pool = converter_pool(load_settings(tempfile.gettempdir())).start()
    ready = time.perf_counter()
    try:
        blobs = [path.read_bytes() for path in paths]
        begin = time.perf_counter()
        with ThreadPoolExecutor(max_workers=pool.spec.workers) as executor:
            pdfs = list(executor.map(pool.convert, blobs))
        elapsed = time.perf_counter() - begin
    finally:
        pool.close()
    assert all(pdf.startswith(b"%PDF-") for pdf in pdfs)
    return ready - started, elapsed


def _soffice(args: list[str], profile: Path) -> None:
    subprocess.run(["soffice", "--headless", "--norestore",
                    f"-env:UserInstallation={profile.as_uri()}", *args],
                   check=True, capture_output=True, timeout=1800)


def bench_batch(paths: list[Path], out: Path, profile: Path) -> float:
    """Return seconds for one soffice converting every file (profile already created)."""
    begin = time.perf_counter()
    _soffice(["--convert-to", "pdf", "--outdir", str(out), *map(str, paths)], profile)
    elapsed = time.perf_counter() - begin
    assert len(list(out.glob("*.pdf"))) == len(paths)
    return elapsed


def bench_cold(paths: list[Path], out: Path, profile: Path) -> float:
    """Return seconds for one soffice process per document, one after another."""
    begin = time.perf_counter()
    for path in paths:
        _soffice(["--convert-to", "pdf", "--outdir", str(out), str(path)], profile)
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=52)
    parser.add_argument("--cold", type=int, default=None,
                        help="documents for (c); default all (it is the slow one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="countersign-bench-"))
    try:
        paths = render_documents(args.documents, work)
        cold_paths = paths[: args.cold] if args.cold else paths
        profile = work / "profile"
        _soffice(["--convert-to", "pdf", "--outdir", str(work / "warmup"), str(paths[0])],
                 profile)  # create the profile once, so neither b nor c pays for it
        print(f"{len(paths)} documents, {os.cpu_count()} cores, "
              f"pool of {PoolSpec().workers} workers")
        startup, pool_s = bench_pool(paths)
        batch_s = bench_batch(paths, work / "batch", profile)
        cold_s = bench_cold(cold_paths, work / "cold", profile)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate_a = len(paths) / pool_s
    rate_b = len(paths) / batch_s
    rate_c = len(cold_paths) / cold_s
    print(f"(a) pool        {rate_a:7.2f} documents/s  ({1000 * pool_s / len(paths):6.1f} ms "
          f"each; pool start-up {startup:.2f} s, once)")
    print(f"(b) batch mode  {rate_b:7.2f} documents/s  ({1000 * batch_s / len(paths):6.1f} ms "
          f"each)")
    print(f"(c) cold        {rate_c:7.2f} documents/s  ({1000 * cold_s / len(cold_paths):6.1f} "
          f"ms each, {len(cold_paths)} documents)")
    print(f"a/b = {rate_a / rate_b:.2f}   a/c = {rate_a / rate_c:.2f}")


if __name__ == "__main__":
    main()
