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
from pipeline.errors import KNOWN_ERRORS, FieldProblem, ValidationFailed
from pipeline.forms.manifest import Template, get_template, list_templates
from pipeline.people.access import Principal
from pipeline.people.parties import list_parties
from pipeline.people.policy import Action, may

router = APIRouter()
CREATOR = permitted(Action.CREATE_DOCUMENT)


@router.get("/templates", response_class=HTMLResponse)
def choose_template(request: Request, principal: Principal = CREATOR) -> HTMLResponse:
    return page(request, "templates.html", "新建文档 / New document",
                templates=list_templates())


def form_to_data(template: Template, form) -> dict[str, Any]:
    """Return the posted form as the template's JSON: lists one per line, tables from their
    grid (``field.ROW.column``, empty rows left out), objects from ``field.key``; empty fields
    left out (validation names what is missing)."""
    data: dict[str, Any] = {}
    items = list(form.multi_items() if hasattr(form, "multi_items") else form.items())
    for spec in template.fields:
        if spec.type == "table":
            rows: dict[int, dict[str, str]] = {}
            for key, value in items:
                name, _, rest = key.partition(".")
                index, _, column = rest.partition(".")
                if name == spec.name and index.isdigit() and str(value).strip():
                    rows.setdefault(int(index), {})[column] = str(value).strip()
            if rows:
                data[spec.name] = [rows[index] for index in sorted(rows)]
            continue
        if spec.type == "object":
            found = {column.name: str(form.get(f"{spec.name}.{column.name}") or "").strip()
                     for column in spec.columns}
            if any(found.values()):
                data[spec.name] = {key: value for key, value in found.items() if value}
            continue
        raw = str(form.get(spec.name) or "").replace("\r\n", "\n")
        if not raw.strip():
            continue
        if spec.type == "list":
            data[spec.name] = [line.strip() for line in raw.split("\n") if line.strip()]
        else:
            data[spec.name] = raw if spec.type == "multiline" else raw.strip()
    return data


def labelled(template: Template, problem: FieldProblem) -> str:
    """Return a validation problem under the field's label (需求方 › 负责人: …)."""
    root, _, rest = problem.path.partition(".")
    name = root.split("[")[0]
    spec = next((f for f in template.fields if f.name == name), None)
    if spec is None:
        return str(problem)
    where = spec.label_zh + root[len(name):]
    column = next((c for c in spec.columns if c.name == rest.split("[")[0]), None)
    if column is not None:
        where += f" › {column.label_zh}"
    return f"{where}：{problem.zh} / {spec.label_en}: {problem.en}"


def _directory(request: Request, principal: Principal) -> list | None:
    """Return the parties to choose from: every one for those who may list them (admins,
    auditors); None for a party, who types the ids it knows — the form must not hand any
    party the whole directory of names, departments and addresses."""
    return list_parties(settings_of(request)) if may(principal, Action.LIST_PARTIES) else None


def form_page(request: Request, template: Template, principal: Principal,
              status_code: int = 200, values: dict | None = None,
              problems: list[str] | None = None,
              chosen: dict[str, list[str]] | None = None, **context: Any) -> HTMLResponse:
    """Return the form of ``template`` filled with ``values`` and the ``chosen`` parties."""
    return page(request, "new.html", template.title_zh, status_code, template=template,
                parties=_directory(request, principal), values=values or {},
                problems=problems or [], chosen=chosen or {}, **context)


def chosen_parties(template: Template, bindings: list[tuple[str, str]]) -> dict[str, list[str]]:
    return {role.key: [p for r, p in bindings if r == role.key] for role in template.roles}


def role_bindings(template: Template, form) -> list[tuple[str, str]]:
    """Return (role, party id) pairs from the form: chosen from the list, or typed (several
    ids of a parallel group separated by commas or spaces)."""
    return [(role.key, party) for role in template.roles
            for value in form.getlist(f"role:{role.key}")
            for party in str(value).replace(",", " ").split()]


@router.get("/templates/{key}/new", response_class=HTMLResponse)
def new_document_form(request: Request, key: str, principal: Principal = CREATOR
                      ) -> HTMLResponse:
    return form_page(request, get_template(key), principal)


@router.post("/templates/{key}/new")
async def new_document(request: Request, key: str, principal: Principal = CREATOR
                       ) -> Response:
    template = get_template(key)
    form = await request.form()
    data = form_to_data(template, form)
    bindings = role_bindings(template, form)
    chosen = chosen_parties(template, bindings)
    try:
        pool = await run_in_threadpool(pool_of, request)
        report = await run_in_threadpool(create_document, settings_of(request), key, data,
                                         bindings, pool, principal.actor)
    except ValidationFailed as exc:
        return form_page(request, template, principal, 422, data,
                         [labelled(template, p) for p in exc.problems], chosen)
    except KNOWN_ERRORS as exc:
        return form_page(request, template, principal, 400, data, [str(exc)], chosen)
    return RedirectResponse(f"/documents/{report.id}?done=created", status_code=303)
