"""Form validation against a template's fields, before anything renders.

``validate_form`` collects every problem at once (never stops at the first) and either returns
the normalised form or raises ValidationFailed listing them, each by field path, in Chinese
and English.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Any

from pipeline.errors import FieldProblem, ValidationFailed
from pipeline.forms.manifest import FieldSpec, Template

# Filled by the system, never by the form (DESIGN.md, data contract).
SYSTEM_KEYS = frozenset({"number", "consensus_date", "signatures", "signers"})
# Signature places are found in the PDF by this marker; a form value must not forge one.
SIGNATURE_MARKER = "[[sig:"
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")


# Characters that end a line somewhere even though they are not "\n": str.splitlines(),
# mail headers, PDF text and terminals all break on them. A one-line value (a department,
# a name) that holds one can smuggle a line break into a document number or a mail header.
LINE_BREAKS = frozenset("\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def bad_character(text: str, allow_newlines: bool) -> str | None:
    """Return the first character not allowed in a document (``U+XXXX``), or None.

    Control characters, surrogates, non-characters and line or paragraph separators are
    refused everywhere; ``\n`` only in multi-line fields; ``\t`` is kept.
    """
    for char in text:
        if char == "\t" or (char == "\n" and allow_newlines):
            continue
        code = ord(char)
        category = unicodedata.category(char)
        if (category in ("Cc", "Cs", "Zl", "Zp") or char in LINE_BREAKS
                or code in (0xFFFE, 0xFFFF)):
            return f"U+{code:04X}"
    return None


def _check_text(path: str, spec: FieldSpec, value: Any, problems: list[FieldProblem],
                multiline: bool) -> str | None:
    if not isinstance(value, str):
        problems.append(FieldProblem(path, f"应为文本，实际为 {_json_type(value)}",
                                     f"expected text, got {_json_type(value)}"))
        return None
    value = value.replace("\r\n", "\n")
    bad = bad_character(value, allow_newlines=multiline)
    if bad is not None and (bad == "U+000A" or unicodedata.category(chr(int(bad[2:], 16)))
                            in ("Zl", "Zp")):
        problems.append(FieldProblem(
            path, f"此字段不能换行（含有换行符 {bad}）" if not multiline else
            f"含有不允许的换行符 {bad}（请使用普通换行）",
            f"this field must be a single line (it holds the line break {bad})"
            if not multiline else f"contains the line separator {bad}; use an ordinary "
            "line break"))
        return None
    if bad:
        problems.append(FieldProblem(path, f"含有不允许的控制字符 {bad}",
                                     f"contains a control character {bad} that is not allowed"))
        return None
    if SIGNATURE_MARKER in value:
        problems.append(FieldProblem(path, f"不能包含保留的签字位标记 {SIGNATURE_MARKER}",
                                     f"must not contain the reserved marker {SIGNATURE_MARKER}"))
        return None
    if spec.max_length is not None and len(value) > spec.max_length:
        problems.append(FieldProblem(
            path, f"过长：{len(value)} 个字符，最多 {spec.max_length} 个",
            f"too long: {len(value)} characters, at most {spec.max_length}"))
        return None
    return value


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean",
            type(None): "null", int: "number", float: "number"}.get(type(value), "value")


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _check_value(path: str, spec: FieldSpec, value: Any,
                 problems: list[FieldProblem]) -> Any:
    """Return the normalised value, or None after appending what is wrong to ``problems``."""
    kind = spec.type
    if kind in ("text", "multiline"):
        return _check_text(path, spec, value, problems, multiline=kind == "multiline")
    if kind == "enum":
        if value not in spec.values:
            allowed = "/".join(spec.values)
            problems.append(FieldProblem(path, f"取值 {value!r} 不在允许范围（{allowed}）内",
                                         f"value {value!r} is not one of {allowed}"))
            return None
        return value
    if kind in ("date", "datetime"):
        if not isinstance(value, str):
            problems.append(FieldProblem(path, f"应为日期文本，实际为 {_json_type(value)}",
                                         f"expected an ISO 8601 string, got {_json_type(value)}"))
            return None
        pattern, example = (DATE_RE, "2024-06-30") if kind == "date" else (
            DATETIME_RE, "2024-05-25T18:00")
        try:
            if not pattern.match(value):
                raise ValueError
            parsed = (date.fromisoformat(value) if kind == "date"
                      else datetime.fromisoformat(value))
        except ValueError:
            problems.append(FieldProblem(
                path, f"日期格式错误：{value!r}，应为 {example}",
                f"bad {kind}: {value!r}, expected ISO 8601 like {example}"))
            return None
        return parsed.isoformat() if kind == "date" else parsed.isoformat(timespec="minutes")
    if kind == "list":
        items = _check_items(path, spec, value, problems)
        text_spec = FieldSpec(spec.name, "text", True, spec.label_zh, spec.label_en,
                              max_length=spec.max_length)
        out = []
        for index, item in enumerate(items or ()):
            item_path = f"{path}[{index + 1}]"
            if _is_empty(item):
                problems.append(FieldProblem(item_path, "条目为空", "empty item"))
                continue
            out.append(_check_text(item_path, text_spec, item, problems, multiline=True))
        return out if items is not None else None
    if kind == "table":
        items = _check_items(path, spec, value, problems)
        return [
            _check_object(f"{path}[{index + 1}]", spec, row, problems)
            for index, row in enumerate(items or ())
        ] if items is not None else None
    if kind == "object":
        return _check_object(path, spec, value, problems)
    raise AssertionError(f"unhandled field type {kind}")


def _check_items(path: str, spec: FieldSpec, value: Any,
                 problems: list[FieldProblem]) -> list | None:
    if not isinstance(value, list):
        problems.append(FieldProblem(path, f"应为列表，实际为 {_json_type(value)}",
                                     f"expected a list, got {_json_type(value)}"))
        return None
    if spec.max_items is not None and len(value) > spec.max_items:
        problems.append(FieldProblem(path, f"条目过多：{len(value)} 条，最多 {spec.max_items} 条",
                                     f"too many items: {len(value)}, at most {spec.max_items}"))
        return None
    return value


def _check_object(path: str, spec: FieldSpec, value: Any,
                  problems: list[FieldProblem]) -> dict | None:
    if not isinstance(value, dict):
        problems.append(FieldProblem(path, f"应为对象，实际为 {_json_type(value)}",
                                     f"expected an object, got {_json_type(value)}"))
        return None
    return _check_fields(path + ".", spec.columns, value, problems)


def _check_fields(prefix: str, specs: tuple[FieldSpec, ...], data: dict,
                  problems: list[FieldProblem]) -> dict:
    known = {spec.name for spec in specs}
    for key in data:
        if key not in known:
            if not prefix and key in SYSTEM_KEYS:
                problems.append(FieldProblem(key, "由系统填写，不能在表单中提供",
                                             "is filled in by the system, not by the form"))
            else:
                problems.append(FieldProblem(f"{prefix}{key}", "未知字段", "unknown field"))
    out: dict[str, Any] = {}
    for spec in specs:
        path = f"{prefix}{spec.name}"
        value = data.get(spec.name)
        if _is_empty(value):
            if spec.required:
                problems.append(FieldProblem(path, f"缺少必填字段「{spec.label_zh}」",
                                             f"required field '{spec.label_en}' is missing"))
            out[spec.name] = [] if spec.type in ("list", "table") else ""
            continue
        out[spec.name] = _check_value(path, spec, value, problems)
    return out


def validate_form(template: Template, data: Any) -> dict[str, Any]:
    """Return ``data`` normalised for rendering (every field present, dates in ISO form).

    Raises ValidationFailed with every problem found when anything is wrong.
    """
    if not isinstance(data, dict):
        kind = _json_type(data)
        raise ValidationFailed([FieldProblem("(form)", f"表单应为 JSON 对象，实际为 {kind}",
                                             f"form must be a JSON object, got {kind}")])
    problems: list[FieldProblem] = []
    out = _check_fields("", template.fields, data, problems)
    if problems:
        raise ValidationFailed(problems)
    return out


def validate_form_value(spec: FieldSpec, value: Any) -> Any:
    """Return one field's value normalised, or raise ValidationFailed naming the problems."""
    problems: list[FieldProblem] = []
    out = _check_value(spec.name, spec, value, problems)
    if problems:
        raise ValidationFailed(problems)
    return out
