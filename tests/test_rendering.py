"""Safe rendering: form values are data. Each hostile value comes out literally in the PDF."""

from __future__ import annotations

import io
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from docxtpl import DocxTemplate

from pipeline.forms.manifest import get_template
from pipeline.forms.validate import validate_form
from pipeline.render.docx import _environment, render_context, render_docx, signers_from_form
from tests.support.forms import TEMPLATE_KEYS, example
from tests.support.pdf import pdf_text, squash

HOSTILE = {
    "jinja expression": "{{ 1+1 }}",
    "jinja statement": "{% for x in range(3) %}loop{% endfor %}",
    "jinja sandbox escape": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "docxtpl rewrite": "{_{ secret }_} {_% if %_}",
    "xml close tag": "</w:t></w:r><w:r><w:t>injected",
    "ampersand": "R&D 部门 & 合作方",
    "angle brackets": "<x> a < b > c <script>alert(1)</script>",
    "quotes": "\"双引号\" 'single' “弯引号” ‘单’",
    "emoji": "进度 ✅ 完成 😀 🚀",
    "cjk punctuation": "「测试」——《标题》、（括号）",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_value_comes_out_literally(pool, name):
    value = HOSTILE[name]
    template = get_template("requirement_confirmation")
    form = example("requirement_confirmation")
    form["background"] = f"«{value}»"
    form["details"] = [f"§{value}§", "第二项"]
    pdf = pool.convert(render_docx(template, validate_form(template, form), "2024-市场-001"))
    text = squash(pdf_text(pdf))
    assert squash(f"«{value}»") in text
    assert squash(f"§{value}§") in text
    if name == "jinja expression":
        assert "«2»" not in text
    if name == "jinja statement":
        assert "looplooploop" not in text


@pytest.mark.slow
def test_ten_thousand_characters_come_out_whole(pool):
    template = get_template("progress_sync")
    form = example("progress_sync")
    long_value = "".join(f"{i:05d}进度" for i in range(1430))[:10000]
    assert len(long_value) == 10000
    form["progress"] = long_value
    pdf = pool.convert(render_docx(template, validate_form(template, form), "JD-1"))
    assert squash(long_value) in squash(pdf_text(pdf, raw=True))


@pytest.mark.slow
def test_multiline_values_keep_their_line_breaks(pool):
    template = get_template("issue_tracking")
    form = example("issue_tracking") | {"solution": "第一步：扩容\n第二步：压测"}
    text = pdf_text(pool.convert(render_docx(template, validate_form(template, form), "W-1")))
    assert "第一步：扩容\n第二步：压测" in text


@pytest.mark.slow
def test_lists_and_tables_become_rows(pool):
    template = get_template("meeting_minutes")
    form = validate_form(template, example("meeting_minutes"))
    text = pdf_text(pool.convert(render_docx(template, form, "JY-2024-001")))
    for attendee in ("李娜", "王强", "赵敏"):
        assert attendee in text
    for item in ("需求优先级排序", "开发资源评估", "时间计划确认", "输出需求文档", "输出排期表"):
        assert item in text
    assert "[[sig:host]]" in text
    assert "[[sig:attendee:3]]" in text and "[[sig:attendee:4]]" not in text


@pytest.mark.slow
def test_empty_optional_table_shows_none_row(pool):
    template = get_template("progress_sync")
    form = example("progress_sync")
    del form["support_requests"]
    text = pdf_text(pool.convert(render_docx(template, validate_form(template, form), "JD-2")))
    assert "（无）" in text
    assert "[[sig:supporter:" not in text


def test_signers_follow_the_manifest():
    rc = get_template("requirement_confirmation")
    form = example("requirement_confirmation")
    assert signers_from_form(rc.roles[0], form) == [
        {"dept": "市场部", "name": "张伟", "title": "经理"}]
    ps = get_template("progress_sync")
    form = example("progress_sync")
    form["support_requests"].append({"dept": "市场部", "content": "再确认", "due": "2024-05-26"})
    form["support_requests"].append({"dept": "法务部", "content": "审核", "due": "2024-05-26"})
    assert [m["dept"] for m in signers_from_form(ps.roles[1], form)] == ["市场部", "法务部"]
    context = render_context(ps, form, "JD-1", {"responsible": [{"dept": "研发部",
                                                                 "name": "王强"}]})
    assert context["signers"]["responsible"][0]["name"] == "王强"


@pytest.mark.slow
def test_datetimes_are_shown_with_a_space(pool):
    template = get_template("issue_tracking")
    form = validate_form(template, example("issue_tracking"))
    assert form["due"] == "2024-05-25T18:00"
    text = pdf_text(pool.convert(render_docx(template, form, "W-1")))
    assert "2024-05-25 18:00" in text and "2024-05-25T18:00" not in text


def docxtpl_render(template, form: dict, number: str) -> bytes:
    """Render with docxtpl's own render and save, in the environment render_docx uses."""
    document = DocxTemplate(str(template.docx_path))
    document.render(render_context(template, form, number), jinja_env=_environment(),
                    autoescape=True)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def parts(docx: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.parametrize("key", TEMPLATE_KEYS)
def test_a_document_is_what_docxtpl_itself_makes(key):
    """render_docx opens each template once and renders only its template parts: every
    part comes out as docxtpl's own render and save make it (the content types list aside,
    which python-docx writes afresh), line breaks and hostile values included."""
    template = get_template(key)
    form = example(key)
    form["remarks"] = "第一行\n第二行\t{{ 1+1 }} </w:t> & <x>"
    form = validate_form(template, form)
    for number in ("N-1", "N-2"):  # the second render starts from the first one's state
        ours, theirs = parts(render_docx(template, form, number)), parts(
            docxtpl_render(template, form, number))
        assert ours.keys() == theirs.keys()
        for name in ours.keys() - {"[Content_Types].xml"}:
            assert ours[name] == theirs[name], name
        assert number.encode() in ours["word/document.xml"]


def test_documents_rendered_at_once_in_threads_keep_their_own_values():
    template = get_template("requirement_confirmation")
    forms = [validate_form(template, example("requirement_confirmation")
                           | {"background": f"第 {index} 份"}) for index in range(24)]
    with ThreadPoolExecutor(max_workers=6) as executor:
        documents = list(executor.map(
            lambda index: render_docx(template, forms[index], f"N-{index}"), range(24)))
    for index, docx in enumerate(documents):
        body = parts(docx)["word/document.xml"].decode("utf-8")
        assert f"第 {index} 份" in body and f"N-{index}<" in body
        assert f"第 {index + 1} 份" not in body
