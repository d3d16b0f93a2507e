"""Checking a new revision of a document against the stored previous one.

Validating a signed PDF on its own cannot tell whether the first signer changed the page in
the same incremental update as its signature: the signature covers its own revision, so it
vouches for whatever that revision holds. Whoever kept the previous revision can tell. An
application that stores every revision compares each new one with the previous bytes — the
ground truth — and accepts only what the step was permitted to write (:class:`Permitted`):
one signature into one field (certifying the document if it is the first), empty signature
fields when preparing, revision data and a document timestamp at closure. Metadata refreshes
(document information, XMP dates) are always tolerated; everything else is a problem, named
in words (:class:`signing.changes.Change`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import SuspiciousModification

from signing import changes as ch
from signing.changes import Change
from signing.diff_rules import INCREMENT_POLICY, page_refs

APPEARANCE_FORM_KEYS = {"/DR", "/DA"}  # resources that signature appearances may bring


@dataclass(frozen=True)
class Permitted:
    """What one step may write on top of the previous revision."""

    signature_field: str | None = None
    certify: bool = False
    new_signature_fields: frozenset[str] = frozenset()
    timestamp_fields: frozenset[str] = frozenset()  # document timestamps
    revision_data: bool = False  # DSS: certificates and revocation data, never content


def _allowed(change: Change, permitted: Permitted) -> bool:
    kind = change.kind
    if kind == ch.METADATA:
        return True
    if kind == ch.SIGNATURE:
        return change.subject == permitted.signature_field
    if kind == ch.CERTIFICATION:
        return permitted.certify
    if kind == ch.SIGNATURE_FIELD_ADDED:
        return change.subject in permitted.new_signature_fields
    if kind == ch.DOCUMENT_TIMESTAMP:
        return change.subject in permitted.timestamp_fields
    if kind == ch.REVISION_DATA:
        return permitted.revision_data
    if kind == ch.FORM:
        return set(change.subject.split(", ")) <= APPEARANCE_FORM_KEYS
    return False


def _problem(zh: str, en: str) -> Change:
    return Change("structure", "", zh, en)


def _unexplained(reader: PdfFileReader, base: int, revision: int) -> list[Change]:
    """Objects rewritten outside what a step that only adds fields may touch (the
    catalog, the document information, the XMP metadata and the pages' /Annots): used where
    pyHanko's analysis cannot run (a revision that creates the form itself)."""
    old = reader.get_historical_resolver(base)
    allowed = {old.root_ref}
    for key in ("/Metadata", "/AcroForm"):
        value = old.root.raw_get(key) if key in old.root else None
        if value is not None and hasattr(value, "reference"):
            allowed.add(value.reference)
    info = old.trailer_view.raw_get("/Info") if "/Info" in old.trailer_view else None
    if info is not None and hasattr(info, "reference"):
        allowed.add(info.reference)
    try:
        allowed |= set(page_refs(old.root["/Pages"]))
    except Exception:  # noqa: BLE001 - an unreadable page tree is reported by describe()
        pass
    stray = ch.rewritten_objects(reader, base, revision) - allowed
    if not stray:
        return []
    return [_problem("有不应改动的对象被改写",
                     f"objects were rewritten that this step may not touch "
                     f"({', '.join(str(r.idnum) for r in sorted(stray, key=lambda r: r.idnum))})")]


def _policy_problems(reader: PdfFileReader, base: int, revision: int,
                     permitted: Permitted) -> list[Change]:
    old = reader.get_historical_resolver(base)
    new = reader.get_historical_resolver(revision)
    try:
        result = INCREMENT_POLICY.apply(old, new)
    except SuspiciousModification as exc:
        first = str(exc).split("\n")[0][:160]
        return [_problem("有无法解释的对象被改写",
                         f"objects were rewritten that no permitted change explains ({first})")]
    except Exception:  # noqa: BLE001 - e.g. no form before this revision: check by hand
        return _unexplained(reader, base, revision)
    fields = {permitted.signature_field, *permitted.new_signature_fields,
              *permitted.timestamp_fields}
    stray = sorted(result.changed_form_fields - fields)
    if stray:
        return [_problem("改动了不属于本步骤的表单字段",
                         f"form fields changed that this step may not touch: "
                         f"{', '.join(stray)}")]
    return []


def check_revision(previous: bytes, current: bytes, permitted: Permitted) -> list[Change]:
    """Return what ``current`` writes on top of ``previous`` beyond ``permitted``, the
    most visible first; an empty list means the step did only what it may."""
    if len(current) <= len(previous) or not current.startswith(previous):
        return [_problem("不是在已存储的上一修订版本之后追加的增量更新",
                         "it does not begin with the exact bytes of the stored previous "
                         "revision")]
    try:
        reader = PdfFileReader(io.BytesIO(current), strict=False)
        if reader.encrypted:
            reader.decrypt(b"")
        base = PdfFileReader(io.BytesIO(previous), strict=False).xrefs.total_revisions - 1
        last = reader.xrefs.total_revisions - 1
    except Exception as exc:  # noqa: BLE001 - hostile input: a problem, never a crash
        return [_problem("无法解析 PDF", f"cannot parse the PDF: {type(exc).__name__}: {exc}")]
    if last <= base:
        return [_problem("没有新增修订版本", "it adds no revision to the previous one")]
    problems: list[Change] = []
    for revision in range(base + 1, last + 1):
        try:
            found = ch.describe(reader, base, revision)
        except Exception as exc:  # noqa: BLE001
            found = [_problem("无法比较修订版本",
                              f"the revision cannot be compared: {type(exc).__name__}")]
        problems += [c for c in found if not _allowed(c, permitted)]
        problems += _policy_problems(reader, base, revision, permitted)
    unique = list(dict.fromkeys(problems))
    order = {kind: i for i, kind in enumerate(
        [ch.PAGE_CONTENT, ch.PAGES, ch.PAGE_RESOURCES, ch.OVERLAY, ch.COMMENT,
         ch.FIELD_CHANGED, ch.FIELD_FILLED, ch.SIGNATURE, ch.SIGNATURE_FIELD_ADDED])}
    return sorted(unique, key=lambda c: order.get(c.kind, len(order)))
