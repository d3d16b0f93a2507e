"""Print the summary table of one ``make bench`` run from its results file (JSON lines).

    .venv/bin/python bench/summary.py RESULTS
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    rows = [json.loads(line) for line in Path(sys.argv[1]).read_text(encoding="utf-8")
            .splitlines() if line.strip()]
    header = ("what", "ours", "peer", "ratio", "goal", "met")
    table = [header, *[(r["what"], r["ours"], r["peer"], r["ratio"], r["goal"],
                        "yes" if r["met"] else "NO") for r in rows]]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    print()
    for index, line in enumerate(table):
        print("| " + " | ".join(str(cell).ljust(width) for cell, width in zip(line, widths,
                                                                          strict=True)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    missed = [r["what"] for r in rows if not r["met"]]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} goals met"
          + (f"; not met: {'; '.join(missed)}" if missed else ""))


if __name__ == "__main__":
    main()
