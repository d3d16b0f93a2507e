"""Manifests, `templates list | show | check`, and a broken template being caught."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.forms.manifest import TEMPLATES_DIR, get_template, list_templates
from pipeline.render.template_check import check_path, check_template
from tests.support.forms import TEMPLATE_KEYS


def test_four_seed_templates_with_versions_and_titles():
    templates = {t.key: t for t in list_templates()}
    assert set(templates) == set(TEMPLATE_KEYS)
    assert templates["requirement_confirmation"].title_zh == "需求确认函"
    assert templates["meeting_minutes"].title_zh == "会议纪要"
    assert {key: t.version for key, t in templates.items()} == dict.fromkeys(TEMPLATE_KEYS, 2)


def test_roles_in_order_parallel_groups_deadlines_and_closure():
    rc = get_template("requirement_confirmation")
    assert [r.key for r in rc.roles] == ["requester", "receiver"]
    assert [r.order for r in rc.roles] == [1, 2]
    assert all(r.deadline_hours == 24 for r in rc.roles)
    ps = get_template("progress_sync")
    assert ps.roles[1].key == "supporter" and ps.roles[1].is_group
    assert ps.roles[1].deemed_consent
    it = get_template("issue_tracking")
    assert it.roles[0].deadline_working_days == 3
    assert it.closure.required_fields == ("result_confirmation",)
    mm = get_template("meeting_minutes")
    assert [r.key for r in mm.roles] == ["host", "attendee"] and mm.roles[1].is_group


def test_fields_follow_the_data_contract():
    expected = {
        "requirement_confirmation": ["requester", "receiver", "background", "details",
                                     "expected_delivery", "resources_needed", "priority",
                                     "receiver_assessment", "remarks"],
        "progress_sync": ["project", "responsible_dept", "stage", "progress", "risks",
                          "support_requests", "next_steps", "sync_date", "remarks"],
        "issue_tracking": ["description", "reporting_dept", "responsible_dept", "solution",
                           "due", "collaborators", "progress_updates", "result_confirmation",
                           "remarks"],
        "meeting_minutes": ["topic", "start", "end", "location", "attendees", "agenda",
                            "discussion", "resolutions", "action_items", "distribution",
                            "archive_folder", "remarks"],
    }
    for key, names in expected.items():
        assert [f.name for f in get_template(key).fields] == names
    priority = get_template("requirement_confirmation").fields[6]
    assert priority.type == "enum" and priority.values == ("高", "中", "低")


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_shipped_templates_pass_check(key):
    assert check_template(get_template(key)) == []


def test_docx_sets_chinese_fonts_and_zh_cn_language():
    with zipfile.ZipFile(get_template("requirement_confirmation").docx_path) as archive:
        styles = archive.read("word/styles.xml").decode()
    assert 'w:eastAsia="Noto Serif CJK SC"' in styles
    assert 'w:eastAsia="zh-CN"' in styles
    assert "CJK JP" not in styles


def _broken_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(TEMPLATES_DIR / "requirement_confirmation", folder)
    manifest = (folder / "manifest.toml").read_text(encoding="utf-8")
    manifest = manifest.replace('signature_place = "sig:receiver"',
                                'signature_place = "sig:nowhere"')
    manifest += ('\n[[fields]]\nname = "budget"\ntype = "text"\nrequired = false\n'
                 'label_zh = "预算"\nlabel_en = "Budget"\n')
    (folder / "manifest.toml").write_text(manifest, encoding="utf-8")
    docx = folder / "template.docx"
    source = zipfile.ZipFile(docx)
    items = [(info, source.read(info.filename)) for info in source.infolist()]
    source.close()
    with zipfile.ZipFile(docx, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in items:
            if info.filename == "word/document.xml":
                data = data.replace(b"{{ remarks }}", b"{{ remarkz }}")
            out.writestr(info, data)
    return folder


def test_broken_template_is_caught_in_both_directions(tmp_path):
    _, problems = check_path(_broken_copy(tmp_path))
    messages = [p.en for p in problems]
    assert any("uses {{ remarkz }}" in m for m in messages), messages
    assert any("field 'remarks' is never shown" in m for m in messages), messages
    assert any("field 'budget' is never shown" in m for m in messages), messages
    assert any("role 'receiver' has no signature place" in m for m in messages), messages
    assert len(problems) == 4


def test_cli_check_exit_codes(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["templates", "check", str(TEMPLATES_DIR / "meeting_minutes")])
    assert ok.exit_code == 0 and "ok" in ok.output
    bad = runner.invoke(main, ["templates", "check", "--json", str(_broken_copy(tmp_path))])
    assert bad.exit_code == 1
    assert json.loads(bad.output)["ok"] is False
    missing = runner.invoke(main, ["templates", "check", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_cli_list_and_show_json():
    runner = CliRunner()
    listed = json.loads(runner.invoke(main, ["templates", "list", "--json"]).output)
    assert {item["key"] for item in listed} == set(TEMPLATE_KEYS)
    assert all({"key", "title", "version"} <= set(item) for item in listed)
    shown = json.loads(runner.invoke(main, ["templates", "show", "issue_tracking",
                                            "--json"]).output)
    assert shown["closure"]["required_fields"] == ["result_confirmation"]
    unknown = runner.invoke(main, ["templates", "show", "nope"])
    assert unknown.exit_code == 2 and "unknown template 'nope'" in unknown.output


def test_cli_reference_is_generated_from_the_help_text():
    from pipeline.cli.docs import DOCS, render

    assert DOCS.read_text(encoding="utf-8") == render(), "run python -m pipeline.cli.docs"
