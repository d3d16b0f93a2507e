"""pyHanko's form rule, for forms whose field names contain periods.

ISO 32000 says a partial field name shall not contain a period; real forms have them
("Signature.1"), and pyHanko refuses to analyse any revision of such a document, which would
condemn every later revision — revision data included. The period matters only where two
different fields end up with the same full name (a flat "a.b" beside a field "b" under "a"):
that collision is refused here instead, so a name still identifies exactly one field.

The field listing and the rule's ``apply`` follow pyHanko's ``form_rules_api`` (MIT licence)
with that one difference; the field rules themselves are pyHanko's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.reader import HistoricalResolver, RawPdfPath
from pyhanko.sign.diff_analysis import FormUpdatingRule, ModificationLevel, SuspiciousModification
from pyhanko.sign.diff_analysis.commons import (
    compare_dicts,
    compare_key_refs,
    qualify_transforming,
)
from pyhanko.sign.diff_analysis.form_rules_api import (
    FieldComparisonContext,
    FieldComparisonSpec,
    FormUpdate,
)
from pyhanko.sign.diff_analysis.rules_api import Context


def _entries(fields, parent: str, inherited, exc) -> Iterator[tuple[str, tuple]]:
    if not isinstance(fields, generic.ArrayObject):
        raise exc("Field list is not an array.")
    seen = set()
    for index, ref in enumerate(fields):
        if not isinstance(ref, generic.IndirectObject):
            raise exc("Fields must be indirect objects")
        field = ref.get_object()
        if not isinstance(field, generic.DictionaryObject):
            raise exc("Fields must be dictionary objects")
        try:
            name = field.raw_get("/T")
        except KeyError:
            continue  # a widget, not a field
        if not isinstance(name, (generic.TextStringObject, generic.ByteStringObject)):
            raise exc("Names must be strings")
        if name in seen:
            raise exc("Duplicate field name")
        seen.add(name)
        full = f"{parent}.{name}" if parent else str(name)
        kind = field.raw_get("/FT") if "/FT" in field else inherited
        kids = field["/Kids"] if "/Kids" in field else generic.ArrayObject()
        if not kids and kind is None:
            raise exc(f"Field type of terminal field {full!r} could not be determined")
        yield full, (kind, ref.reference, kids, index)


def list_fields(old_fields, new_fields, old_path: RawPdfPath | None, parent: str = "",
                inherited=None) -> Iterator[tuple[str, FieldComparisonSpec]]:
    """pyHanko's ``_list_fields``, with periods allowed in partial names."""
    old_by_name = dict(_entries(old_fields, parent, inherited, misc.PdfReadError))
    new_by_name = dict(_entries(new_fields, parent, inherited, SuspiciousModification))
    for name in old_by_name.keys() | new_by_name.keys():
        old_kind, old_ref, old_kids, index = old_by_name.get(
            name, (None, None, generic.ArrayObject(), None))
        new_kind, new_ref, new_kids, _ = new_by_name.get(
            name, (None, None, generic.ArrayObject(), None))
        if old_ref and new_ref and new_kind != old_kind:
            raise SuspiciousModification(f"Update changed field type of {name}")
        kind = old_kind or new_kind
        path = old_path + index if index is not None and old_path is not None else None
        yield name, FieldComparisonSpec(field_type=kind, old_field_ref=old_ref,
                                        new_field_ref=new_ref, old_canonical_path=path)
        if old_kids or new_kids:
            yield from list_fields(old_kids, new_kids, parent=name, inherited=kind,
                                   old_path=path + "/Kids" if path is not None else None)


class DottedNamesFormRule(FormUpdatingRule):
    """:class:`FormUpdatingRule` over :func:`list_fields`: periods allowed in partial
    names, two fields with one full name refused."""

    def apply(self, old: HistoricalResolver, new: HistoricalResolver
              ) -> Iterable[tuple[ModificationLevel, FormUpdate]]:
        lta, filling = ModificationLevel.LTA_UPDATES, ModificationLevel.FORM_FILLING
        old_form, new_form = yield from qualify_transforming(
            lta, compare_key_refs("/AcroForm", old, old.root, new.root),
            transform=FormUpdate.curry_ref(field_name=None, context_checked=Context.from_absolute(
                old, RawPdfPath("/Root", "/AcroForm"))))
        compare_dicts(old_form, new_form, self.ignored_acroform_keys)
        fields_path = RawPdfPath("/Root", "/AcroForm", "/Fields")
        old_fields, new_fields = yield from qualify_transforming(
            lta, compare_key_refs("/Fields", old, old_form, new_form),
            transform=FormUpdate.curry_ref(field_name=None, context_checked=Context.from_absolute(
                old, fields_path)))
        _old_dr, new_dr = yield from qualify_transforming(
            filling, compare_key_refs("/DR", old, old_form, new_form),
            transform=FormUpdate.curry_ref(field_name=None, context_checked=Context.from_absolute(
                old, RawPdfPath("/Root", "/AcroForm", "/DR"))))
        if new_dr is not None:
            for dep in new.collect_dependencies(new_dr, since_revision=old.revision + 1):
                yield filling, FormUpdate(updated_ref=dep, field_name=None)
        specs: dict[str, FieldComparisonSpec] = {}
        for name, spec in list_fields(old_fields, new_fields, old_path=fields_path):
            if name in specs:
                raise SuspiciousModification(f"two form fields are both named {name}")
            specs[name] = spec
        context = FieldComparisonContext(field_specs=specs, old=old, new=new)
        for rule in self.field_rules:
            yield from rule.apply(context)
