"""Server-side signing with the party's own key, in turn; retried when another signature
lands first."""

from __future__ import annotations

from datetime import datetime

from pipeline.config import Settings
from pipeline.documents.events import EventKind
from pipeline.documents.notify import dispatch
from pipeline.documents.repository import (
    document_events,
    document_status,
    load_state,
    projection,
    revision_store,
)
from pipeline.documents.state import (
    DocumentState,
    Member,
    Status,
    fold,
    next_members,
    status_of,
    unmet_requirements,
)
from pipeline.documents.status import DocumentStatus
from pipeline.errors import BadInput, Conflict, NotYourTurn, OperationFailed, ResolutionRequired
from pipeline.forms.manifest import get_template
from pipeline.people.parties import get_party
from pipeline.people.throttle import passphrase_attempt
from pipeline.record import anchors, database, keyring, ledger
from pipeline.record.crashpoints import crash_point
from pipeline.signing_setup import signing_environment
from signing.appearance import Stamp
from signing.fonts import stamp_subset
from signing.keys import certificate_sha256, load_pkcs12_signer
from signing.revisions import Permitted, check_revision
from signing.sign import SignatureRequest, sign_pdf

SIGN_RETRIES = 5


def first_signature(state: DocumentState) -> bool:
    """Whether the next signature is the document's first (deemed consent is no signature):
    the first one certifies the document."""
    return not any(not s.deemed for s in state.signed.values())


def pending_member(state: DocumentState, party_id: str) -> Member:
    status = status_of(state)
    if status != Status.AWAITING:
        raise NotYourTurn(f"文档状态为 {status}，不能签署",
                          f"the document is {status}; nothing to sign")
    mine = [m for m in state.members if m.party == party_id]
    if not mine:
        raise NotYourTurn(f"{party_id} 不是此文档的签署方",
                          f"{party_id} is not a party to this document")
    waiting = next_members(state)
    for member in waiting:
        if member.party == party_id:
            _require_fields(state, member)
            return member
    if all(m.field in state.signed for m in mine):
        raise NotYourTurn(f"{party_id} 已经签过", f"{party_id} has already signed")
    ahead = ", ".join(f"{m.role} {m.party}" for m in waiting)
    raise NotYourTurn(f"还没轮到 {party_id}，正在等待：{ahead}",
                      f"not {party_id}'s turn yet: waiting for {ahead}")


def prepare_signing(settings: Settings) -> None:
    """Do once what every signature in this process needs: trust, the decrypted TSA key, the
    stamp face and the font machinery (a signer process runs this when it starts)."""
    env = signing_environment(settings)
    env.tsa.prepare()
    stamp_subset(env.font, "")


def after_signing(settings: Settings, document_id: str) -> None:
    """What follows a recorded signature and need not delay its answer: the ledger head's
    anchor when one is due, and the mail to the parties whose turn it now is. Both can be
    repeated (the periodic passes do, for whatever a crash left undone)."""
    anchors.anchor_if_due(settings)
    dispatch(settings, document_id)


def _require_fields(state: DocumentState, member: Member) -> None:
    """Raise ResolutionRequired while a field ``member`` must fill first is empty."""
    missing = unmet_requirements(state, get_template(state.template), member)
    if missing:
        zh = "、".join(f"「{spec.label_zh}」" for spec in missing)
        en = ", ".join(spec.label_en for spec in missing)
        raise ResolutionRequired(
            f"{member.party} 须先填写{zh}（resolve）才能签字",
            f"{member.party} must record the {en} (resolve) before signing: it is empty")


def sign_document(settings: Settings, document_id: str, party_id: str,
                  passphrase: str, expected_revision: str | None = None,
                  client: str | None = None, follow_up: bool = True) -> DocumentStatus:
    """Sign the party's pending field on the latest revision with its own key.

    If another signature lands first, the signature is made again on the new revision —
    unless the caller named the revision it saw (``expected_revision``): then a different
    head is a Conflict, and nothing is signed. Passphrase guesses are throttled per party
    and per ``client`` (see ``throttle``), and every wrong one is recorded.
    ``follow_up=False`` leaves :func:`after_signing` to the caller (the service runs it
    after answering).
    """
    party = get_party(settings, party_id)
    if not party.key_file:
        raise BadInput(f"{party_id} 没有签名密钥（可上传自行签署的文件）",
                       f"{party_id} has no signing key here (upload a countersigned file)")
    pending_member(load_state(settings, document_id), party_id)
    key = keyring.party_key(settings, party.key_file)
    signer = passphrase_attempt(settings, party_id, client, document_id,
                                lambda: load_pkcs12_signer(key, passphrase))
    env = signing_environment(settings)
    store = revision_store(settings)
    for _attempt in range(SIGN_RETRIES):
        state = load_state(settings, document_id)
        if expected_revision and state.head_revision != expected_revision:
            raise Conflict("文档已有新的修订版本，请刷新后再签",
                           f"the document moved on: its head is {state.head_revision}, not "
                           f"{expected_revision}; review the new revision and sign again")
        member = pending_member(state, party_id)
        template = get_template(state.template)
        role = next(r for r in template.roles if r.key == member.role)
        certify = first_signature(state)
        stamp = Stamp(name=party.name, dept=party.dept,
                      reason=f"{role.label_zh}确认 / {role.label_en} approval",
                      signed_at=datetime.now(settings.zone))
        base = store.get(state.head_revision)
        signed = sign_pdf(base, SignatureRequest(member.field, stamp, certify), signer,
                          env.tsa, env.trust, env.font)
        stray = check_revision(base, signed, Permitted(signature_field=member.field,
                                                       certify=certify))
        if stray:  # our own signer wrote more than the signature: store nothing
            raise OperationFailed(f"签名结果包含意外的修改：{stray[0].zh}",
                                  f"the signed revision changes more than field "
                                  f"{member.field}: {stray[0].en}")
        digest = store.put(signed)
        crash_point("sign:after-store")
        event = ledger.new_event(document_id, EventKind.SIGNED, party_id, {
            "field": member.field, "role": member.role, "party": party_id,
            "certificate_sha256": certificate_sha256(signer.signing_cert)},
            revision_before=state.head_revision, revision_after=digest)
        after = fold([*document_events(settings, document_id), {**event, "seq": 0}])
        try:
            with database.connection(settings.database) as conn:
                ledger.append(conn, [event], expect_head=state.head_revision, check_head=True,
                              projection=projection(after))
        except database.HeadMoved:
            if expected_revision:
                raise Conflict("文档已有新的修订版本，请刷新后再签",
                               "another signature landed first; review and sign again"
                               ) from None
            continue
        crash_point("sign:after-ledger")
        if follow_up:
            after_signing(settings, document_id)
        return document_status(settings, document_id)
    raise Conflict("文档正被同时签署，请重试", "the document kept changing while signing; retry")

