"""Validation: every problem at once, by field, in Chinese and English; CLI exit 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import ValidationFailed
from pipeline.forms.manifest import get_template
from pipeline.forms.validate import validate_form
from tests.support.forms import TEMPLATE_KEYS, example


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_examples_are_valid(key):
    form = validate_form(get_template(key), example(key))
    assert set(form) == get_template(key).field_names


def problems_of(key: str, form) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_form(get_template(key), form)
    return {p.path: f"{p.zh} / {p.en}" for p in caught.value.problems}


def test_every_kind_of_problem_reported_at_once():
    form = example("requirement_confirmation")
    del form["background"]                       # missing required field
    form["details"] = "not a list"               # wrong type
    form["expected_delivery"] = "2024-02-30"     # bad date
    form["priority"] = "紧急"                     # outside the enum
    form["requester"]["name"] = "张" * 51         # too long
    form["colour"] = "red"                       # unknown key
    problems = problems_of("requirement_confirmation", form)
    assert "缺少必填字段" in problems["background"] and "missing" in problems["background"]
    assert "应为列表" in problems["details"] and "expected a list" in problems["details"]
    assert "日期格式错误" in problems["expected_delivery"]
    assert "2024-02-30" in problems["expected_delivery"]
    assert "不在允许范围" in problems["priority"] and "高/中/低" in problems["priority"]
    assert "过长" in problems["requester.name"] and "at most 50" in problems["requester.name"]
    assert "未知字段" in problems["colour"] and "unknown field" in problems["colour"]
    assert len(problems) == 6


def test_nested_rows_and_datetimes():
    form = example("meeting_minutes")
    form["start"] = "2024-05-21 25:00"
    form["action_items"][1]["due"] = "tomorrow"
    form["action_items"][0]["extra"] = 1
    form["attendees"].append("李四")
    problems = problems_of("meeting_minutes", form)
    assert set(problems) == {"start", "action_items[2].due", "action_items[1].extra",
                             "attendees[4]"}


def test_system_filled_keys_are_refused():
    form = example("requirement_confirmation") | {"number": "2024-市场-999"}
    problems = problems_of("requirement_confirmation", form)
    assert "由系统填写" in problems["number"]


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\ud800", "\u0085"])
def test_control_characters_are_refused(char):
    form = example("requirement_confirmation")
    form["background"] = f"before{char}after"
    problems = problems_of("requirement_confirmation", form)
    assert "控制字符" in problems["background"]
    assert f"U+{ord(char):04X}" in problems["background"]


def test_newline_allowed_in_multiline_not_in_text():
    form = example("progress_sync")
    form["progress"] = "line one\r\nline two"
    form["project"] = "two\nlines"
    problems = problems_of("progress_sync", form)
    assert set(problems) == {"project"}
    form["project"] = "one line"
    assert validate_form(get_template("progress_sync"), form)["progress"] == "line one\nline two"


def test_signature_marker_cannot_be_forged():
    form = example("requirement_confirmation")
    form["remarks"] = "[[sig:receiver]]"
    assert "签字位标记" in problems_of("requirement_confirmation", form)["remarks"]


def test_form_must_be_an_object():
    assert "(form)" in problems_of("issue_tracking", ["a list"])


def test_cli_reports_every_problem_on_stderr_with_exit_2(tmp_path):
    form = example("issue_tracking")
    form["due"] = "2024-05-25"
    form["solution"] = ""
    path = tmp_path / "form.json"
    path.write_text(json.dumps(form, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path / "d"), "generate",
                                       "issue_tracking", "--data", str(path),
                                       "--out", str(tmp_path / "x.pdf")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("solution: 缺少必填字段")
    assert lines[1].startswith("due: 日期格式错误")
    assert "2 problem(s)" in lines[-1]
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not valid JSON (line 1 column 2"),
    (None, "not found"),
])
def test_cli_bad_form_file(tmp_path, content, expected):
    path = tmp_path / "form.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["generate", "issue_tracking", "--data", str(path),
                                       "--out", str(tmp_path / "x.pdf")])
    assert result.exit_code == 2
    assert expected in result.output and len(result.output.strip().splitlines()) == 1
