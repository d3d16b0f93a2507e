"""CountersignError → JSON 4xx: the API's one translation of pipeline errors."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from api.models import ErrorBody
from pipeline.errors import BadInput, CountersignError, UnknownTemplate, ValidationFailed


def status_for(error: CountersignError) -> int:
    if isinstance(error, UnknownTemplate):
        return 404
    if isinstance(error, ValidationFailed):
        return 422
    if isinstance(error, BadInput):
        return 400
    return 409


async def countersign_error_handler(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, CountersignError)
    problems = ([problem.as_dict() for problem in error.problems]
                if isinstance(error, ValidationFailed) else [])
    body = ErrorBody(code=error.code, zh=error.zh, en=error.en, message=str(error),
                     problems=problems)
    return JSONResponse(body.model_dump(), status_code=status_for(error))
