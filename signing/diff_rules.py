"""Which later revisions a signature tolerates: pyHanko's difference analysis, with the two
rules real documents need that its default policy lacks.

pyHanko accepts a later revision only when every object it writes is explained by a
whitelisting rule, each at a modification level (LTA updates < form filling < annotations).
Its default policy refuses two things honest tools do every day:

- revision data (DSS/VRI) written the way other tools write it: lower-case VRI keys, extra
  keys, a VRI entry updated by a second long-term-validation pass. Revision data is outside
  what was signed, so any update of the DSS's own objects is an LTA update — but an object
  the signed content also uses stays unexplained, however the DSS refers to it;
- annotations added after signing (comments, highlights), which ISO 32000 allows at DocMDP
  level 3. They are cleared at level ANNOTATIONS: a certification at level 1 or 2 still
  fails, and whether an annotation paints over signed content is decided on top of this
  (:mod:`signing.changes`).

New signature fields are accepted after a certification as Acrobat accepts them (pyHanko's
default is stricter than the standard here), and field names may contain periods
(:mod:`signing.form_rule`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver, RawPdfPath
from pyhanko.sign.diff_analysis import (
    DocInfoRule,
    GenericFieldModificationRule,
    MetadataUpdateRule,
    ModificationLevel,
    ObjectStreamRule,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
    SuspiciousModification,
    XrefStreamRule,
)
from pyhanko.sign.diff_analysis.commons import compare_dicts, compare_key_refs
from pyhanko.sign.diff_analysis.constants import (
    ACROFORM_EXEMPT_STRICT_COMPARISON,
    ROOT_EXEMPT_STRICT_COMPARISON,
)
from pyhanko.sign.diff_analysis.rules.file_structure_rules import CatalogModificationRule
from pyhanko.sign.diff_analysis.rules_api import (
    Context,
    QualifiedWhitelistRule,
    ReferenceUpdate,
    RelativeContext,
    WhitelistRule,
)

from signing.form_rule import DottedNamesFormRule

LTA = ModificationLevel.LTA_UPDATES
MAX_DSS_DEPTH = 4  # DSS → VRI → entry → array: deeper is not revision data


class RevisionDataRule(WhitelistRule):
    """Clear every object of the DSS that the new revision wrote: new objects reachable from
    it, and existing non-stream containers rewritten in place, approved only along their
    path under /DSS (an object the signed content also uses stays unexplained)."""

    def apply(self, old: HistoricalResolver, new: HistoricalResolver
              ) -> Iterable[ReferenceUpdate]:
        path = RawPdfPath("/Root", "/DSS")
        for ref in compare_key_refs("/DSS", old, old.root, new.root):
            yield ReferenceUpdate(ref, context_checked=Context.from_absolute(old, path))
        try:
            dss = new.root.raw_get("/DSS")
        except KeyError:
            return
        written = set(new.explicit_refs_in_revision())
        yield from self._walk(old, new, dss, path, written, 0)

    def _walk(self, old, new, value, path: RawPdfPath, written: set, depth: int
              ) -> Iterator[ReferenceUpdate]:
        if depth > MAX_DSS_DEPTH:
            return
        if isinstance(value, generic.IndirectObject):
            ref = value.reference
            if old.is_ref_unassignable(ref):  # a new object: it and its new parts are fine
                yield ReferenceUpdate(ref)
                for dep in new.collect_dependencies(value, since_revision=old.revision + 1):
                    yield ReferenceUpdate(dep)
                return
            if ref not in written:
                return  # unchanged since the signature
            value = value.get_object()
            if isinstance(value, generic.StreamObject):
                return  # rewriting an existing stream is never revision data
            if depth > 0:
                yield ReferenceUpdate(ref, context_checked=Context.from_absolute(old, path))
        if isinstance(value, generic.DictionaryObject):
            for key in value:
                yield from self._walk(old, new, value.raw_get(key), path + key, written,
                                      depth + 1)
        elif isinstance(value, generic.ArrayObject):
            for index, item in enumerate(value):
                yield from self._walk(old, new, item, path + index, written, depth + 1)


def page_refs(pages: generic.DictionaryObject, seen: frozenset = frozenset()
               ) -> Iterator[generic.Reference]:
    """Yield the references of every page under ``pages``, in order."""
    for kid in pages.raw_get("/Kids"):
        if not isinstance(kid, generic.IndirectObject) or kid.reference in seen:
            raise SuspiciousModification("the page tree is malformed")
        node = kid.get_object()
        if node.get("/Type") == "/Pages":
            yield from page_refs(node, seen | {kid.reference})
        else:
            yield kid.reference


def _annots(page: generic.DictionaryObject) -> tuple[list, generic.Reference | None]:
    try:
        raw = page.raw_get("/Annots")
    except KeyError:
        return [], None
    array = raw.get_object()
    if not isinstance(array, generic.ArrayObject):
        raise SuspiciousModification("/Annots is not an array")
    refs = [item.reference for item in array if isinstance(item, generic.IndirectObject)]
    return refs, raw.reference if isinstance(raw, generic.IndirectObject) else None


class AnnotationRule(QualifiedWhitelistRule):
    """Clear annotations added to a page (and the page's new /Annots) at level ANNOTATIONS.

    Widgets are left to the form rules; removing or rewriting an existing annotation, or
    changing anything else in the page dictionary, stays unexplained."""

    def apply_qualified(self, old: HistoricalResolver, new: HistoricalResolver
                        ) -> Iterable[tuple[ModificationLevel, ReferenceUpdate]]:
        level = ModificationLevel.ANNOTATIONS
        try:
            old_pages = list(page_refs(old.root["/Pages"]))
            new_pages = list(page_refs(new.root["/Pages"]))
        except (KeyError, TypeError, AttributeError):
            return
        if old_pages != new_pages:
            return  # pages added, removed or reordered: never an annotation
        for page_ref in new_pages:
            old_page, new_page = old(page_ref), new(page_ref)
            old_annots, _ = _annots(old_page)
            new_annots, array_ref = _annots(new_page)
            added = [ref for ref in new_annots if ref not in set(old_annots)]
            if not set(old_annots) <= set(new_annots):
                raise SuspiciousModification("annotations were removed from a page")
            plain = [ref for ref in added if new(ref).get("/Subtype") != "/Widget"]
            if not plain:
                continue
            compare_dicts(old_page, new_page, frozenset({"/Annots"}))
            yield level, ReferenceUpdate(page_ref, context_checked=None)
            if array_ref is not None:
                yield level, ReferenceUpdate(array_ref, context_checked=RelativeContext(
                    page_ref, RawPdfPath("/Annots")))
            for ref in plain:
                if old.is_ref_unassignable(ref):
                    yield level, ReferenceUpdate(ref)
                    annot = generic.IndirectObject(ref.idnum, ref.generation, new)
                    for dep in new.collect_dependencies(annot, since_revision=old.revision + 1):
                        yield level, ReferenceUpdate(dep)


class CertificationRule(WhitelistRule):
    """Clear a /Perms dictionary added to the catalog (a certification signature's own
    revision, which also sets /SigFlags); whether the step was allowed to certify is the
    caller's question."""

    def apply(self, old: HistoricalResolver, new: HistoricalResolver
              ) -> Iterable[ReferenceUpdate]:
        path = RawPdfPath("/Root", "/Perms")
        for ref in compare_key_refs("/Perms", old, old.root, new.root):
            yield ReferenceUpdate(ref, context_checked=Context.from_absolute(old, path))


def _policy(*, certification: bool) -> StandardDiffPolicy:
    catalog = (CatalogModificationRule(ROOT_EXEMPT_STRICT_COMPARISON | {"/Perms"})
               if certification else CatalogModificationRule())
    extra = [CertificationRule().as_qualified(ModificationLevel.FORM_FILLING)] \
        if certification else []
    return StandardDiffPolicy(
        global_rules=[
            catalog, *extra,
            DocInfoRule().as_qualified(LTA),
            XrefStreamRule().as_qualified(LTA),
            ObjectStreamRule().as_qualified(LTA),
            RevisionDataRule().as_qualified(LTA),
            MetadataUpdateRule().as_qualified(LTA),
            AnnotationRule(),
        ],
        form_rule=DottedNamesFormRule(field_rules=[
            SigFieldCreationRule(allow_new_visible_after_certify=True),
            SigFieldModificationRule(),
            GenericFieldModificationRule(),
        ], ignored_acroform_keys=ACROFORM_EXEMPT_STRICT_COMPARISON | (
            {"/SigFlags"} if certification else set())),
    )


POLICY = _policy(certification=False)
"""The difference policy of every validation here (see the module docstring)."""

INCREMENT_POLICY = _policy(certification=True)
"""The same, for comparing the revision *before* a first signature with the signature's own
revision (which adds /Perms when it certifies): pyHanko never needs that comparison, an
application that checks what each of its steps wrote does."""
