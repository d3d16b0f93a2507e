"""Form data → .docx, through docxtpl with a sandboxed, autoescaping jinja2 environment.

Values are data, never template code: they are XML-escaped (docxtpl's default leaves ``&`` and
``<x>`` raw, which corrupts or silently rewrites the document), and the sequences docxtpl
rewrites after rendering (``{_{`` → ``{{``) are neutralised so they come out literally.
"""

from __future__ import annotations

import io
import threading
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from docxtpl import DocxTemplate
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from pipeline.errors import RenderError
from pipeline.forms.manifest import FieldSpec, RoleSpec, Template

# Template parts kept compiled (a few per template: body, headers, footers).
CACHED_SOURCES = 64


def _literal(value: Any) -> Any:
    """Escape a value for WordprocessingML text and keep docxtpl's post-render rewriting off it.

    ``_`` becomes the character reference ``&#95;``: identical text once parsed, but no longer
    matched by docxtpl's ``{_{``/``}_}``/``{_%``/``%_}`` replacement.
    """
    if value is None:
        return ""
    if isinstance(value, Markup):
        return value
    return Markup(str(escape(value)).replace("_", "&#95;"))


def sandboxed_environment() -> SandboxedEnvironment:
    """Return the jinja2 environment every template renders in."""
    return SandboxedEnvironment(autoescape=True, finalize=_literal,
                                undefined=jinja2.ChainableUndefined)


class _CompileOnceEnvironment(SandboxedEnvironment):
    """The sandboxed environment, compiling each template source once: docxtpl hands it the
    same document XML for every document made from a template (two thirds of a render were
    spent compiling it again)."""

    def __init__(self) -> None:
        super().__init__(autoescape=True, finalize=_literal, undefined=jinja2.ChainableUndefined)
        self._compiled: dict[str, jinja2.Template] = {}
        self._lock = threading.Lock()

    def from_string(self, source, globals=None, template_class=None):  # noqa: A002 - jinja2's
        if globals is not None or template_class is not None or not isinstance(source, str):
            return super().from_string(source, globals, template_class)
        with self._lock:
            compiled = self._compiled.get(source)
        if compiled is None:
            compiled = super().from_string(source)
            with self._lock:
                if len(self._compiled) >= CACHED_SOURCES:
                    self._compiled.clear()
                self._compiled[source] = compiled
        return compiled


class _Template(DocxTemplate):
    """docxtpl's template with its XML clean-up (regular expressions over the whole part,
    the same for every document of a template) done once per part."""

    _patched: dict[str, str] = {}

    def patch_xml(self, src_xml: str) -> str:
        patched = self._patched.get(src_xml)
        if patched is None:
            patched = super().patch_xml(src_xml)
            if len(self._patched) >= CACHED_SOURCES:
                self._patched.clear()
            self._patched[src_xml] = patched
        return patched


@cache
def _environment() -> _CompileOnceEnvironment:
    return _CompileOnceEnvironment()


@cache
def _docx_bytes(path: Path) -> bytes:
    return path.read_bytes()


def signers_from_form(role: RoleSpec, form: dict[str, Any]) -> list[dict[str, str]]:
    """Return the members of ``role`` as the form names them: [{dept, name, title}].

    ``requester`` (an object) gives one member; ``responsible_dept`` (a string) one member with
    only a department; ``support_requests[].dept`` one member per distinct department.
    """
    source = role.signers_from
    if not source:
        return [{"dept": "", "name": "", "title": ""}]
    if "[]" in source:
        list_name, _, column = source.partition("[].")
        seen: list[str] = []
        for row in form.get(list_name) or ():
            dept = (row or {}).get(column, "") if isinstance(row, dict) else ""
            if dept and dept not in seen:
                seen.append(dept)
        return [{"dept": dept, "name": "", "title": ""} for dept in seen]
    value = form.get(source)
    if isinstance(value, dict):
        return [{"dept": value.get("dept", ""), "name": value.get("name", ""),
                 "title": value.get("title", "")}]
    return [{"dept": str(value or ""), "name": "", "title": ""}]


def _for_display(specs: tuple[FieldSpec, ...], values: dict[str, Any]) -> dict[str, Any]:
    """Return ``values`` as a formal document shows them: date-times as ``2024-05-25 18:00``."""
    shown = dict(values)
    for spec in specs:
        value = shown.get(spec.name)
        if spec.type == "datetime" and isinstance(value, str):
            shown[spec.name] = value.replace("T", " ")
        elif spec.type == "table" and isinstance(value, list):
            shown[spec.name] = [_for_display(spec.columns, row) if isinstance(row, dict) else row
                                for row in value]
        elif spec.type == "object" and isinstance(value, dict):
            shown[spec.name] = _for_display(spec.columns, value)
    return shown


def render_context(template: Template, form: dict[str, Any], number: str,
                   signers: dict[str, list[dict[str, str]]] | None = None) -> dict[str, Any]:
    """Return the jinja2 context: the form, the number and each role's signers."""
    members = {role.key: signers_from_form(role, form) for role in template.roles}
    if signers:
        members.update(signers)
    return {**_for_display(template.fields, form), "number": number, "signers": members,
            "template": {"key": template.key, "version": template.version}}


def render_docx(template: Template, form: dict[str, Any], number: str,
                signers: dict[str, list[dict[str, str]]] | None = None) -> bytes:
    """Return the .docx bytes of ``template`` filled with a validated ``form``."""
    document = _Template(io.BytesIO(_docx_bytes(template.docx_path)))
    try:
        document.render(render_context(template, form, number, signers),
                        jinja_env=_environment(), autoescape=True)
    except jinja2.TemplateError as exc:
        raise RenderError(f"模板 {template.key} 渲染失败：{exc}",
                          f"template {template.key} failed to render: {exc}") from None
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
