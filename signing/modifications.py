"""The verdict on what happened after a signature: pyHanko's difference analysis says
whether each later revision is acceptable and at which level, :mod:`signing.changes` says
what changed, and the DocMDP level of the certification (if any) says what was allowed.

- In a certified document, anything beyond the certification's level fails (level 1: no
  change; 2: form filling and signatures; 3: annotations too).
- In an uncertified one, additions that leave what was signed as it was — comments, form
  filling, more signatures, revision data — are warnings; an annotation that can paint over
  the page fails, as does any change to pages, content, fonts or signed fields.
Revision data, document timestamps and metadata refreshes are never a modification.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from signing import changes as ch
from signing import indications as ind
from signing.indications import Finding

COVERED = (SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION)
# Changes that leave what was signed as it was (revision data, metadata, more signatures).
BENIGN = {ch.SIGNATURE, ch.DOCUMENT_TIMESTAMP, ch.SIGNATURE_FIELD_ADDED, ch.REVISION_DATA,
          ch.METADATA}
# The order in which changes are named: what a reader sees first.
SEVERITY = [ch.PAGE_CONTENT, ch.PAGES, ch.PAGE_RESOURCES, ch.OVERLAY, ch.FIELD_CHANGED,
            ch.ANNOTATION_CHANGED, ch.PAGE_PROPERTIES, ch.CATALOG, ch.FORM, ch.CERTIFICATION,
            ch.FIELD_FILLED, ch.COMMENT]
# Changes a reader sees in what was signed: never permitted, whatever the policy cleared.
VISIBLE = {ch.PAGE_CONTENT, ch.PAGES, ch.PAGE_RESOURCES, ch.PAGE_PROPERTIES, ch.FIELD_CHANGED,
           ch.ANNOTATION_CHANGED, ch.CATALOG}
# What each DocMDP level allows besides the benign changes.
# (Viewers filling a form may also update the form's default resources: FORM.)
ALLOWED_BY = {MDPPerm.NO_CHANGES: set(), MDPPerm.FILL_FORMS: {ch.FIELD_FILLED, ch.FORM},
              MDPPerm.ANNOTATE: {ch.FIELD_FILLED, ch.FORM, ch.COMMENT, ch.OVERLAY}}


@dataclass(frozen=True)
class DocumentFacts:
    """What every signature's verdict needs to know about the file."""

    reader: PdfFileReader
    last_revision: int
    whitespace_tail: bool
    certification: tuple[MDPPerm, int] | None


def _permission(sig: EmbeddedPdfSignature, doc: DocumentFacts) -> MDPPerm | None:
    """The strictest DocMDP level that binds the revisions after ``sig``."""
    levels = [sig.docmdp_level] if sig.docmdp_level is not None else []
    if doc.certification and doc.certification[1] <= sig.signed_revision:
        levels.append(doc.certification[0])
    return min(levels, key=lambda p: p.value) if levels else None


def _first(changes: list[ch.Change], kinds) -> ch.Change | None:
    ranked = sorted((c for c in changes if c.kind in kinds), key=lambda c: SEVERITY.index(c.kind))
    return ranked[0] if ranked else None


def _modified(change: ch.Change | None, fallback: str) -> Finding:
    zh, en = (change.zh, change.en) if change else ("有无法解释的对象被改写", fallback)
    return ind.failed(ind.FORMAT_FAILURE, f"签名后文档被修改：{zh}",
                      f"the document was modified after signing: {en}")


def _short(diff) -> str:
    text = str(diff).split("\n")[0]
    return "objects were rewritten that no permitted change explains" + (
        f" ({text[:120]})" if text else "")


def modification_findings(sig: EmbeddedPdfSignature, diff, coverage, doc: DocumentFacts
                           ) -> tuple[list[Finding], list[str], list[ch.Change]]:
    """Judge what happened after ``sig``: (findings, warnings, changes)."""
    if coverage not in COVERED:
        name = coverage.name if coverage else "unknown"
        return [ind.failed(ind.FORMAT_FAILURE, "签名未覆盖整个修订版本",
                           f"the signature does not cover its whole revision ({name})")], [], []
    if sig.signed_revision >= doc.last_revision:
        return [], [], []
    try:
        changes = ch.describe(doc.reader, sig.signed_revision, doc.last_revision)
    except Exception:  # noqa: BLE001 - the policy's verdict stands without the words
        changes = []
    significant = [c for c in changes if c.kind not in BENIGN]
    if not isinstance(getattr(diff, "modification_level", None), ModificationLevel):
        return [_modified(_first(significant, SEVERITY), _short(diff))], [], changes
    permission = _permission(sig, doc)
    findings: list[Finding] = []
    if permission is not None:
        beyond = [c for c in significant if c.kind not in ALLOWED_BY[permission]]
        if beyond or diff.modification_level.value > permission.value:
            first = _first(beyond, SEVERITY)
            findings.append(ind.failed(
                ind.FORMAT_FAILURE, "违反认证签名的修改权限（DocMDP）",
                "the certification (DocMDP) permissions were violated"
                + (f": {first.en}" if first else "")))
    overlay = _first(significant, {ch.OVERLAY})
    if overlay and permission != MDPPerm.ANNOTATE:
        findings.append(_modified(overlay, ""))
    # What the signer did not forbid but a reader should know: additions to an uncertified
    # document, and annotations that may cover content where the certification allows them.
    warned = {ch.COMMENT, ch.FIELD_FILLED} if permission is None else (
        {ch.OVERLAY} if permission == MDPPerm.ANNOTATE else set())
    warnings = [f"签名后新增：{c.zh} / added after signing: {c.en}" for c in significant
                if c.kind in warned]
    # pyHanko approved the objects; what a reader would still see as changed fails anyway.
    if not findings and (unexplained := _first(significant, VISIBLE)):
        findings.append(_modified(unexplained, ""))
    return findings, warnings, changes


