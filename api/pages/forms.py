"""New documents from the browser: choose a template, fill the form the manifest describes
(with the same validation messages as the API and the CLI), create."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import settings_of
from api.pages.common import page, permitted
from api.workers import pool_of
from pipeline.documents.create import create_document
from pipeline.errors import KNOWN_ERRORS, ValidationFailed
from pipeline.forms.manifest import Template, get_template, list_templates
from pipeline.people.access import Principal
from pipeline.people.parties import list_parties
from pipeline.people.policy import Action, may

TYPE_HINTS = {
    "list": "每行一项 / one per line",
    "table": "每行一条，列用 | 分隔 / one row per line, columns separated by |",
    "object": "各项用 | 分隔 / parts separated by |",
}
router = APIRouter()
CREATOR = permitted(Action.CREATE_DOCUMENT)


@router.get("/templates", response_class=HTMLResponse)
def choose_template(request: Request, principal: Principal = CREATOR) -> HTMLResponse:
    return page(request, "templates.html", "新建文档 / New document",
                templates=list_templates())


def form_to_data(template: Template, form) -> dict[str, Any]:
    """Return form data as the template's JSON: lists one per line, table rows and objects
    as ``a | b | c`` lines, empty fields left out (validation names what is missing)."""
    data: dict[str, Any] = {}
    for spec in template.fields:
        raw = (form.get(spec.name) or "").replace("\r\n", "\n")
        if not raw.strip():
            continue
        if spec.type == "list":
            data[spec.name] = [line.strip() for line in raw.split("\n") if line.strip()]
        elif spec.type in ("table", "object"):
            rows = []
            for line in (text for text in raw.split("\n") if text.strip()):
                cells = [c.strip() for c in line.split("|")]
                rows.append({col.name: cell for col, cell in zip(spec.columns, cells,
                                                                 strict=False) if cell})
            data[spec.name] = rows if spec.type == "table" else (rows[0] if rows else {})
        else:
            data[spec.name] = raw if spec.type == "multiline" else raw.strip()
    return data


def _directory(request: Request, principal: Principal) -> list | None:
    """Return the parties to choose from: every one for those who may list them (admins,
    auditors); None for a party, who types the ids it knows — the form must not hand any
    party the whole directory of names, departments and addresses."""
    return list_parties(settings_of(request)) if may(principal, Action.LIST_PARTIES) else None


def _form_page(request: Request, template: Template, principal: Principal,
               status_code: int = 200, values: dict | None = None,
               problems: list[str] | None = None) -> HTMLResponse:
    return page(request, "new.html", template.title_zh, status_code, template=template,
                parties=_directory(request, principal), values=values or {},
                problems=problems or [], hints=TYPE_HINTS)


def role_bindings(template: Template, form) -> list[tuple[str, str]]:
    """Return (role, party id) pairs from the form: chosen from the list, or typed (several
    ids of a parallel group separated by commas or spaces)."""
    return [(role.key, party) for role in template.roles
            for value in form.getlist(f"role:{role.key}")
            for party in str(value).replace(",", " ").split()]


@router.get("/templates/{key}/new", response_class=HTMLResponse)
def new_document_form(request: Request, key: str, principal: Principal = CREATOR
                      ) -> HTMLResponse:
    return _form_page(request, get_template(key), principal)


@router.post("/templates/{key}/new")
async def new_document(request: Request, key: str, principal: Principal = CREATOR
                       ) -> Response:
    template = get_template(key)
    form = await request.form()
    data = form_to_data(template, form)
    bindings = role_bindings(template, form)
    try:
        pool = await run_in_threadpool(pool_of, request)
        report = await run_in_threadpool(create_document, settings_of(request), key, data,
                                         bindings, pool, principal.actor)
    except ValidationFailed as exc:
        return _form_page(request, template, principal, 422, dict(form),
                          [str(p) for p in exc.problems])
    except KNOWN_ERRORS as exc:
        return _form_page(request, template, principal, 400, dict(form), [str(exc)])
    return RedirectResponse(f"/documents/{report.id}", status_code=303)
