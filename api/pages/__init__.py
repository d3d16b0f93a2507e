"""The web pages: server-rendered, Chinese first with English beside it, usable on a phone.

People sign in with a one-time link sent by e-mail (or an access token); the pages call the
same use cases as the API and the CLI, and ask the same policy who may do what.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.pages import audit, documents, forms, sign_in
from api.pages.common import (
    PageRefused,
    SignInNeeded,
    as_page,
    csrf_checked,
    refused_page,
    sign_in_first,
)

# Every form post of every page is checked for its CSRF token and its origin.
router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])
for _area in (sign_in, documents, forms, audit):
    router.include_router(_area.router)

__all__ = ["PageRefused", "SignInNeeded", "as_page", "refused_page", "router",
           "sign_in_first"]
