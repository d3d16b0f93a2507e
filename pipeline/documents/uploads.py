"""Countersigned uploads: a party signs the current revision in its own tool and uploads it.

An upload is accepted only if all of these hold, checked in this order:
1. it is a PDF no larger than the limit (refused before it is read whole);
2. it begins with the exact bytes of the document's current revision and adds to them;
3. it adds exactly one signature, into the uploading party's own field, covering the file;
4. the signing certificate is one registered for the party (its own key's, or one an
   administrator registered for it), whatever names it carries;
5. every signature, the new one and all earlier ones, is valid under the validation helper
   (intact, trusted with revocation required, timestamped, nothing changed beyond the
   signature fields);
6. compared with the stored current revision (the ground truth), the upload writes nothing
   but the party's signature into its field (certifying the document if it is the first
   signature): a first signer who repaints a page in its own signing revision is caught here,
   where no earlier signature could notice.
A refusal names its first reason in one sentence, in Chinese and English; every problem
found goes into the ledger record (hash, who, why, details), and the document stays exactly
as it was.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pyhanko.pdf_utils.reader import PdfFileReader

from pipeline.config import Settings
from pipeline.documents.events import EventKind
from pipeline.documents.notify import dispatch
from pipeline.documents.repository import (
    append_checked,
    document_events,
    document_status,
    load_state,
    revision_store,
)
from pipeline.documents.sign import first_signature, pending_member
from pipeline.documents.status import DocumentStatus
from pipeline.errors import UploadRejected
from pipeline.people.parties import get_party, registered_certificates
from pipeline.record import ledger
from pipeline.record.files import read_upload  # noqa: F401 - where callers find it too
from pipeline.record.store import sha256
from pipeline.signing_setup import trust_for
from signing.keys import certificate_sha256
from signing.revisions import Permitted, check_revision
from signing.validation import validate_pdf

# A countersignature is one incremental update; a tool may add its own DSS update too.
MAX_ADDED_REVISIONS = 3


def _identity_problem(cert, party, registered: frozenset[str]) -> tuple[str, str] | None:
    """Return why ``cert`` is not the party's, or None: its fingerprint must be one of the
    party's registered certificates. A matching name proves nothing (a colleague of the
    same name, in the same department, has a certificate of their own)."""
    fingerprint = certificate_sha256(cert)
    if fingerprint in registered:
        return None
    subject = cert.subject.native
    return (f"签名证书不是 {party.id}（{party.name}）登记的证书",
            f"the signing certificate ({subject.get('common_name')}, {fingerprint[:16]}…) "
            f"does not belong to {party.id} ({party.name}): it is not a certificate "
            "registered for the party")


@dataclass(frozen=True)
class UploadVerdict:
    """Either the first rule an upload breaks (zh, en) with every problem found, or the
    accepted signature's certificate fingerprint."""

    problem: tuple[str, str] | None = None
    certificate_sha256: str | None = None
    details: tuple[str, ...] = ()


def check_upload(settings: Settings, state, party, member, data: bytes,
                 earlier_revisions: set[str]) -> UploadVerdict:
    """Return the verdict on ``data`` as the party's upload (nothing is recorded here)."""
    problem, report = _first_problem(settings, state, party, member, data,
                                     earlier_revisions)
    if problem:
        return UploadVerdict(problem=problem[:2], details=tuple(problem[2:]))
    new = next(s for s in report.signatures if s.field == member.field)
    return UploadVerdict(certificate_sha256=new.certificate_sha256)


def _first_problem(settings: Settings, state, party, member, data: bytes,
                   earlier_revisions: set[str]):
    """Return ((zh, en, *details), None) for the first rule broken, or (None, the
    validation report)."""
    head = revision_store(settings).get(state.head_revision)
    if not data.startswith(b"%PDF-"):
        return ("不是 PDF 文件", "not a PDF file"), None
    if not data.startswith(head) or len(data) == len(head):
        if sha256(data) in earlier_revisions or data == head:
            return ("上传的是本文档已有的修订版本，未新增签名",
                    "this is a revision the document already has (an older or the current "
                    "one), not a new countersignature"), None
        return ("文件不是基于当前修订版本的增量更新",
                "the file does not begin with the exact bytes of the current revision "
                f"({state.head_revision[:16]}…): sign the latest download, as an incremental "
                "update"), None
    added = data.count(b"startxref", len(head))
    if added > MAX_ADDED_REVISIONS:  # refused before parsing: validation is quadratic in them
        return ("上传的文件新增了过多的修订版本",
                f"the upload adds {added} revisions to the current one; a countersignature "
                f"adds one (at most {MAX_ADDED_REVISIONS})"), None
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = sorted(reader.embedded_regular_signatures,
                            key=lambda s: s.signed_revision)
        before = len(PdfFileReader(io.BytesIO(head), strict=False).embedded_regular_signatures)
    except Exception as exc:  # noqa: BLE001 - hostile input: refuse, never crash
        return ("无法解析上传的 PDF",
                f"cannot parse the uploaded PDF: {type(exc).__name__}: {exc}"), None
    if len(signatures) != before + 1:
        return ("上传的文件必须恰好新增一个签名",
                f"the upload must add exactly one signature (it adds "
                f"{len(signatures) - before})"), None
    new = signatures[-1]
    if str(new.field_name) != member.field:
        return (f"签名应签在 {member.field} 签字栏",
                f"the new signature is in field {new.field_name!r}, not {party.id}'s field "
                f"{member.field!r}"), None
    report = validate_pdf(data, trust_for(settings))
    new_report = next((s for s in report.signatures if s.field == member.field), None)
    if new_report is None:
        return ("新签名无法读取", f"the new signature in field {member.field} cannot be read"), None
    identity = _identity_problem(new.signer_cert, party,
                                 registered_certificates(settings, party))
    if identity:
        return identity, None
    if new_report.coverage != "ENTIRE_FILE":
        return ("新签名未覆盖整个文件", f"the new signature does not cover the whole file "
                f"({new_report.coverage})"), None
    details = [*report.problems, *(f"{s.field}: {p}" for s in report.signatures
                                   for p in s.problems)]
    for item in report.signatures:
        if not item.valid:
            which = "新签名" if item is new_report else f"原有签名 {item.field}"
            first = item.findings[0]
            return (f"{which}无效：{first.zh}",
                    f"signature {item.field} is not valid: {first.en}", *details), None
    if report.problems:
        first = report.findings[0]
        return (first.zh, first.en, *details), None
    extra = check_revision(head, data, Permitted(signature_field=member.field,
                                                 certify=first_signature(state),
                                                 revision_data=True))
    if extra:
        return (f"除了在 {member.field} 签字栏签名，上传的文件还修改了文档：{extra[0].zh}",
                f"besides its signature in field {member.field}, the upload changes the "
                f"document: {extra[0].en}", *(c.en for c in extra)), None
    return None, report


def upload_countersigned(settings: Settings, document_id: str, party_id: str,
                         data: bytes) -> DocumentStatus:
    """Accept or refuse a countersigned PDF for the party's pending field; return the status.

    Raises UploadRejected (after recording it) when any rule is broken.
    """
    state = load_state(settings, document_id)
    member = pending_member(state, party_id)
    party = get_party(settings, party_id)
    digest = sha256(data)
    earlier = {e["revision_after"] for e in document_events(settings, document_id)
               if e["revision_after"]}
    verdict = check_upload(settings, state, party, member, data, earlier)
    problem = verdict.problem
    if problem:
        event = ledger.new_event(document_id, EventKind.UPLOAD_REJECTED, party_id, {
            "field": member.field, "party": party_id, "upload_sha256": digest,
            "reason_zh": problem[0], "reason_en": problem[1],
            "details": list(verdict.details)})
        append_checked(settings, state, [event])
        raise UploadRejected(f"上传被拒绝：{problem[0]}", f"upload refused: {problem[1]}")
    revision = revision_store(settings).put(data)
    event = ledger.new_event(document_id, EventKind.UPLOAD_ACCEPTED, party_id, {
        "field": member.field, "role": member.role, "party": party_id,
        "certificate_sha256": verdict.certificate_sha256},
        revision_before=state.head_revision, revision_after=revision)
    append_checked(settings, state, [event])
    dispatch(settings, document_id)
    return document_status(settings, document_id)
