"""Reading ``bulk`` input: one form per CSV row or JSONL line, each with its line number.

CSV cells of list, table and object fields hold JSON (``["a", "b"]``); a dotted column such
as ``requester.dept`` fills one key of an object field. Empty cells are left out.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import BadInput
from pipeline.forms.manifest import Template

STRUCTURED = ("list", "table", "object")


@dataclass(frozen=True)
class Row:
    """One input row: its line number in the file, and the form or why it could not be read."""

    line: int
    form: Any = None
    error: str | None = None


def read_rows(path: Path, template: Template) -> Iterator[Row]:
    """Yield every row of a ``.csv`` or ``.jsonl`` file; unreadable rows carry an error."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise BadInput(f"不支持的行文件格式 {suffix!r}（应为 .csv 或 .jsonl）",
                       f"unsupported rows file {suffix!r} (expected .csv or .jsonl)")
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BadInput(f"无法读取 {path}：{exc.strerror}",
                       f"cannot read {path}: {exc.strerror}") from None
    with handle:
        try:
            if suffix == ".csv":
                yield from _csv_rows(handle, template)
            else:
                yield from _jsonl_rows(handle)
        except UnicodeDecodeError:
            raise BadInput(f"{path} 不是 UTF-8 编码", f"{path} is not UTF-8 text") from None


def _jsonl_rows(handle) -> Iterator[Row]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield Row(number, json.loads(line))
        except json.JSONDecodeError as exc:
            yield Row(number, error=f"JSON 格式错误：{exc.msg} / invalid JSON: {exc.msg}")


def _csv_rows(handle, template: Template) -> Iterator[Row]:
    reader = csv.DictReader(handle)
    types = {spec.name: spec.type for spec in template.fields}
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(reader.line_num, error=f"CSV 格式错误：{exc} / invalid CSV: {exc}")
            continue
        try:
            yield Row(reader.line_num, _form_from_record(record, types))
        except ValueError as exc:
            yield Row(reader.line_num, error=str(exc))


def _form_from_record(record: dict[str | None, Any], types: dict[str, str]) -> dict[str, Any]:
    if None in record:
        raise ValueError("此行的单元格多于表头 / more cells than header columns")
    form: dict[str, Any] = {}
    for column, cell in record.items():
        if cell is None or cell == "":
            continue
        name, _, key = str(column).partition(".")
        if key:
            form.setdefault(name, {})[key] = cell
        elif types.get(name) in STRUCTURED:
            try:
                form[name] = json.loads(cell)
            except json.JSONDecodeError as exc:
                raise ValueError(f"列 {name} 不是有效的 JSON：{exc.msg} / column {name} is not "
                                 f"valid JSON: {exc.msg}") from None
        else:
            form[name] = cell
    return form
