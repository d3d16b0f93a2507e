"""Audit pages: the review report with its chart, and verifying any PDF."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from api.deps import settings_of
from api.gate import RateLimited, client_of
from api.pages.common import page, permitted
from pipeline.audit.review import review, review_chart
from pipeline.audit.sandbox import VerifierBusy
from pipeline.people.access import Principal
from pipeline.people.policy import Action

router = APIRouter()
REVIEWER = permitted(Action.REVIEW)
VERIFIER = permitted(Action.VERIFY_FILE)


@router.get("/report", response_class=HTMLResponse)
def report_page(request: Request, since: str = "", until: str = "",
                principal: Principal = REVIEWER) -> HTMLResponse:
    settings = settings_of(request)
    today = datetime.now(settings.zone).date()
    since = since or today.replace(day=1).isoformat()
    until = until or today.isoformat()
    return page(request, "report.html", "复盘 / Review", since=since, until=until,
                report=review(settings, since, until))


@router.get("/report/chart.png")
def report_chart(request: Request, since: str, until: str,
                 principal: Principal = REVIEWER) -> Response:
    return Response(review_chart(review(settings_of(request), since, until)),
                    media_type="image/png")


@router.get("/verify", response_class=HTMLResponse)
def verify_form(request: Request, principal: Principal = VERIFIER) -> HTMLResponse:
    return page(request, "verify.html", "验证 / Verify", report=None)


@router.post("/verify", response_class=HTMLResponse)
async def verify_upload(request: Request, file: UploadFile = File(...),
                        principal: Principal = VERIFIER) -> HTMLResponse:
    """Verify a visitor's PDF: through the per-client gate (rate and concurrency), then in
    the budgeted verification workers — never in the server's own threads."""
    limit = settings_of(request).max_upload_bytes
    data = await file.read(limit + 1)  # the body limit already cut the stream at its size
    if len(data) > limit:
        return page(request, "verify.html", "验证 / Verify", 413, report=None,
                    flash="文件过大 / the file is too large")
    try:
        async with request.app.state.verify_gate.admit(client_of(request)):
            report = await request.app.state.verifier.verify(data)
    except (RateLimited, VerifierBusy) as exc:
        response = page(request, "verify.html", "验证 / Verify",
                        429 if isinstance(exc, RateLimited) else 503, report=None,
                        flash=str(exc))
        response.headers["Retry-After"] = str(getattr(exc, "retry_after", 5))
        return response
    return page(request, "verify.html", "验证 / Verify", report=report)
