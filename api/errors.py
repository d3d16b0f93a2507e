"""Errors as JSON: every pipeline error and every access refusal gets a stable code and a
message in Chinese and English; nothing else escapes as a 500 with a traceback."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.gate import RateLimited
from api.limits import BodyTooLarge, too_large_body
from api.models import ErrorBody
from pipeline.audit.sandbox import VerifierBusy
from pipeline.documents.hold import NotArchived
from pipeline.errors import (
    KNOWN_ERRORS,
    BadInput,
    ClosureRefused,
    Conflict,
    CountersignError,
    Forbidden,
    NotYourTurn,
    UnknownDocument,
    UnknownParty,
    UnknownTemplate,
    ValidationFailed,
    as_pipeline_error,
)
from pipeline.jobs.outputs import UnknownJob, UnknownJobFile
from pipeline.people.throttle import TooManyAttempts
from pipeline.record.engine import DatabaseUnavailable
from pipeline.record.store import StoreUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.status, self.code, self.zh, self.en = status, code, zh, en


def status_for(error: CountersignError) -> int:
    """Return the HTTP status of a pipeline error."""
    if isinstance(error, TooManyAttempts | RateLimited):
        return 429
    if isinstance(error, VerifierBusy):
        return 503
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, UnknownTemplate | UnknownDocument | UnknownParty | UnknownJob
                  | UnknownJobFile):
        return 404
    if isinstance(error, Conflict | NotYourTurn | ClosureRefused | NotArchived):
        return 409
    if isinstance(error, StoreUnavailable | DatabaseUnavailable):
        return 503
    if isinstance(error, ValidationFailed):
        return 422
    if isinstance(error, BadInput):
        return 400
    return 422


def _body(code: str, zh: str, en: str, problems=()) -> dict:
    return ErrorBody(code=code, zh=zh, en=en, message=f"{zh} / {en}",
                     problems=list(problems)).model_dump()


async def countersign_error_handler(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, KNOWN_ERRORS)
    error = as_pipeline_error(error)
    problems = ([problem.as_dict() for problem in error.problems]
                if isinstance(error, ValidationFailed) else [])
    status = status_for(error)
    headers = {"Retry-After": str(getattr(error, "retry_after", 5))} if status in (429, 503) \
        else None
    return JSONResponse(_body(error.code, error.zh, error.en, problems), status_code=status,
                        headers=headers)


async def body_too_large_handler(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, BodyTooLarge)
    return JSONResponse(too_large_body(error.limit), status_code=413)


async def api_error_handler(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return JSONResponse(_body(error.code, error.zh, error.en), status_code=error.status)


async def request_validation_handler(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [{"field": ".".join(str(p) for p in item["loc"]), "zh": item["msg"],
                 "en": item["msg"]} for item in error.errors()]
    return JSONResponse(_body("bad_request", "请求格式错误", "the request is malformed",
                              problems), status_code=422)


async def unexpected_error_handler(_: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)
    return JSONResponse(_body("internal_error", "服务器内部错误", "internal error"),
                        status_code=500)
