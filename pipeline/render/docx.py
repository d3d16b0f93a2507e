"""Form data → .docx, through docxtpl with a sandboxed, autoescaping jinja2 environment.

Values are data, never template code: they are XML-escaped (docxtpl's default leaves ``&`` and
``<x>`` raw, which corrupts or silently rewrites the document), and the sequences docxtpl
rewrites after rendering (``{_{`` → ``{{``) are neutralised so they come out literally.
"""

from __future__ import annotations

import io
import threading
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.oxml import parse_xml, serialize_part_xml
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

    def resolve_listing(self, xml: str) -> str:
        # docxtpl turns tabs, line breaks and page breaks in values into WordprocessingML
        # with a regular-expression pass over every paragraph and run of the part: the
        # same text back when there are none (most documents).
        if not any(char in xml for char in "\t\a\n\f"):
            return xml
        return super().resolve_listing(xml)


# The core properties docxtpl renders (DocxTemplate.render_properties).
RENDERED_PROPERTIES = ("author", "comments", "identifier", "language", "subject", "title")


@dataclass
class _Prepared:
    """A template's .docx opened once: the archive's members as they are, and the parts
    docxtpl renders — the body, each header and footer, the core properties — as patched
    sources, rendered for each document and put back in place of the originals."""

    document: _Template
    members: list[tuple[str, bytes]]
    body: str
    headers_footers: list[tuple[str, str]]  # (archive member, patched source)
    core: str  # the core properties' archive member
    properties: dict[str, str]
    lock: threading.Lock


@cache
def _prepared(path: Path) -> _Prepared:
    data = path.read_bytes()
    document = _Template(io.BytesIO(data))
    document.render_init()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [(name, archive.read(name)) for name in archive.namelist()]
    parts = []
    for uri in (document.HEADER_URI, document.FOOTER_URI):
        for _, part in document.get_headers_footers(uri):
            parts.append((part.partname.lstrip("/"),
                          document.patch_xml(document.get_part_xml(part))))
    footnotes = [part for part in document.docx.part.package.iter_parts()
                 if part.content_type == CT.WML_FOOTNOTES]
    if footnotes:  # docxtpl renders them too; no template here has any
        raise RenderError(f"模板 {path.name} 含脚注，不支持", f"template {path.name} has footnotes")
    (core,) = [part for part in document.docx.part.package.iter_parts()
               if part.content_type == CT.OPC_CORE_PROPERTIES]
    properties = {name: getattr(document.docx.core_properties, name)
                  for name in RENDERED_PROPERTIES}
    return _Prepared(document, members, document.patch_xml(document.get_xml()), parts,
                     core.partname.lstrip("/"), properties, threading.Lock())


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
    """Return the .docx bytes of ``template`` filled with a validated ``form``.

    What docxtpl's render and save do, without opening and re-writing the whole package for
    each document: the template is opened once (``_prepared``), and each document renders
    only the parts that hold template code, with docxtpl's own steps.
    """
    prepared = _prepared(template.docx_path)
    context = render_context(template, form, number, signers)
    env = _environment()
    document = prepared.document
    try:
        with prepared.lock:  # the document's element tree and properties are shared
            document.render_init()
            body = document.fix_tables(document.render_xml_part(
                prepared.body, document.docx._part, context, env))
            document.fix_docpr_ids(body)
            document.map_tree(body)
            rendered = {"word/document.xml": serialize_part_xml(document.docx._element)}
            for name, source in prepared.headers_footers:
                xml = document.render_xml_part(source, None, context, env)
                rendered[name] = serialize_part_xml(parse_xml(xml.encode("utf-8")))
            core = document.docx.core_properties
            for name, initial in prepared.properties.items():
                setattr(core, name, env.from_string(initial).render(context))
            rendered[prepared.core] = serialize_part_xml(core._element)
    except jinja2.TemplateError as exc:
        raise RenderError(f"模板 {template.key} 渲染失败：{exc}",
                          f"template {template.key} failed to render: {exc}") from None
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in prepared.members:
            archive.writestr(name, rendered.get(name, data))
    return out.getvalue()
