"""``/api/parties``: the people who sign."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.deps import permitted, settings_of
from api.models import PartyIn, PartyOut
from pipeline.config import Settings
from pipeline.people.parties import add_party, list_parties
from pipeline.people.policy import Action

router = APIRouter(prefix="/api/parties", tags=["parties"])


@router.get("", response_model=list[PartyOut], dependencies=[permitted(Action.LIST_PARTIES)])
def parties(settings: Settings = Depends(settings_of)) -> list[PartyOut]:
    return [PartyOut(**party.summary()) for party in list_parties(settings)]


@router.post("", response_model=PartyOut, status_code=201,
             dependencies=[permitted(Action.ADD_PARTY)])
def new_party(body: PartyIn, settings: Settings = Depends(settings_of)) -> PartyOut:
    return PartyOut(**add_party(settings, name=body.name, dept=body.dept, email=body.email,
                                party_id=body.id, superior_email=body.superior_email,
                                issue_cert=body.issue_cert,
                                passphrase=body.passphrase).summary())
