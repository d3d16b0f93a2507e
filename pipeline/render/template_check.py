"""``templates check``: does a template's .docx agree with its manifest?

Compares, in both directions, the variables the .docx uses with the manifest's fields, and
checks that every role has its signature place marker in the document.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import jinja2
from docxtpl import DocxTemplate

from pipeline.errors import BadInput
from pipeline.forms.manifest import Template, load_template
from pipeline.render.docx import sandboxed_environment

# Variables the pipeline provides itself (rendering.render_context).
SYSTEM_VARIABLES = frozenset({"number", "signers", "template"})


@dataclass(frozen=True)
class CheckProblem:
    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.zh} / {self.en}"


def _document_text(docx: Path) -> str:
    """Return the text of every w:t in the document body, joined (tags stripped)."""
    with zipfile.ZipFile(docx) as archive:
        xml = archive.read("word/document.xml").decode("utf-8")
    return "".join(re.findall(r"<w:t(?:\s[^>]*)?>([^<]*)</w:t>", xml))


def check_template(template: Template) -> list[CheckProblem]:
    """Return every mismatch between ``template``'s .docx and its manifest (empty: it agrees)."""
    problems: list[CheckProblem] = []
    if not template.docx_path.is_file():
        return [CheckProblem(f"找不到模板文件 {template.docx_path}",
                             f"template file {template.docx_path} not found")]
    try:
        used = DocxTemplate(str(template.docx_path)).get_undeclared_template_variables(
            sandboxed_environment())
        text = _document_text(template.docx_path)
    except jinja2.TemplateSyntaxError as exc:
        return [CheckProblem(f"模板语法错误（第 {exc.lineno} 行）：{exc.message}",
                             f"template syntax error (line {exc.lineno}): {exc.message}")]
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        return [CheckProblem(f"无法读取 .docx：{exc}", f"cannot read the .docx: {exc}")]
    for name in sorted(used - template.field_names - SYSTEM_VARIABLES):
        problems.append(CheckProblem(f".docx 使用了变量 {name}，清单中没有该字段",
                                     f"the .docx uses {{{{ {name} }}}} but the manifest has no "
                                     f"field {name!r}"))
    for spec in template.fields:
        if spec.name not in used:
            problems.append(CheckProblem(f"字段 {spec.name}（{spec.label_zh}）未在 .docx 中使用",
                                         f"field {spec.name!r} is never shown in the .docx"))
    for role in template.roles:
        place = role.signature_place
        marker = f"[[{place}:" if role.is_group else f"[[{place}]]"
        if not place or marker not in text:
            problems.append(CheckProblem(f"角色 {role.key}（{role.label_zh}）没有签字位",
                                         f"role {role.key!r} has no signature place "
                                         f"({marker} not found in the .docx)"))
    return problems


def check_path(path: Path) -> tuple[Template, list[CheckProblem]]:
    """Load the template folder (or its manifest) at ``path`` and check it."""
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise BadInput(f"找不到模板目录 {path}", f"no template folder at {path}")
    template = load_template(folder)
    return template, check_template(template)
