"""What changed between two revisions of a PDF, in words a person can act on.

pyHanko's difference analysis (:mod:`signing.diff_rules`) decides whether a later revision is
acceptable object by object; when it is not, its reason names object numbers. This module
reads the same two revisions the way a person would — pages, their content, fonts and
annotations, form fields, signatures, revision data — and lists each change as a
:class:`Change`, so that a verdict can say "page 1 content changed" and so that the
application can check that a revision did only what it was allowed to do.

An added annotation is a *comment* when it cannot hide what is under it (a note icon, a
highlight drawn with a blend mode or transparency, a line) and an *overlay* otherwise: any
annotation whose appearance shows text or images, or fills an opaque shape larger than a note
icon, can paint over signed content.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader

from signing.diff_rules import page_refs

SIGNATURE = "signature"
DOCUMENT_TIMESTAMP = "document-timestamp"
SIGNATURE_FIELD_ADDED = "signature-field-added"
CERTIFICATION = "certification"
REVISION_DATA = "revision-data"
METADATA = "metadata"
FIELD_FILLED = "field-filled"
COMMENT = "comment"
OVERLAY = "overlay"
PAGE_CONTENT = "page-content"
PAGE_RESOURCES = "page-resources"
PAGE_PROPERTIES = "page-properties"
PAGES = "pages"
ANNOTATION_CHANGED = "annotation-changed"
FIELD_CHANGED = "field-changed"
CATALOG = "catalog"
FORM = "form"

COMMENT_SUBTYPES = {"/Text", "/Popup", "/Highlight", "/Underline", "/Squiggly", "/StrikeOut",
                    "/Caret", "/Link"}
NOTE_ICON_MAX = 40.0  # points: a sticky note's icon, whatever its appearance
PAINTS_CONTENT = {b"Tj", b"TJ", b"'", b'"', b"Do", b"BI", b"sh"}
FILLS = {b"f", b"F", b"f*", b"B", b"B*", b"b", b"b*"}
TOKEN = re.compile(rb"\((?:\\.|[^\\)])*\)|<<|>>|<[^>]*>|/[^\s/\[\]()<>{}%]*|[^\s/\[\]()<>{}%]+")
IGNORED_CATALOG = {"/Pages", "/AcroForm", "/DSS", "/Metadata", "/Version", "/Extensions",
                   "/Perms"}
IGNORED_FORM = {"/Fields", "/SigFlags"}


@dataclass(frozen=True)
class Change:
    """One change between two revisions: its kind, what it concerns (a page number, a
    field name, a key), and a sentence in Chinese and English."""

    kind: str
    subject: str
    zh: str
    en: str


def _plain(value):
    return value.decrypted if isinstance(value, generic.DecryptedObjectProxy) else value


def _equal(a, b) -> bool:
    """Whether two PDF values are the same, comparing decrypted strings and decoded
    streams (an encrypted document's values are read through decryption proxies)."""
    a, b = _plain(a), _plain(b)
    if isinstance(a, generic.StreamObject) or isinstance(b, generic.StreamObject):
        if not (isinstance(a, generic.StreamObject) and isinstance(b, generic.StreamObject)):
            return False
        try:
            same_data = a.data == b.data
        except Exception:  # noqa: BLE001 - undecodable: compare what is stored
            same_data = a.encoded_data == b.encoded_data
        keys = (set(a) | set(b)) - {"/Length"}
        return same_data and all(k in a and k in b and _equal(a.raw_get(k), b.raw_get(k))
                                 for k in keys)
    if isinstance(a, generic.DictionaryObject):
        return (isinstance(b, generic.DictionaryObject) and set(a) == set(b)
                and all(_equal(a.raw_get(k), b.raw_get(k)) for k in a))
    if isinstance(a, generic.ArrayObject):
        return (isinstance(b, generic.ArrayObject) and len(a) == len(b)
                and all(_equal(a.raw_get(i), b.raw_get(i)) for i in range(len(a))))
    return a == b


def rewritten_objects(reader: PdfFileReader, base: int, revision: int) -> set[generic.Reference]:
    """Return the objects that existed at ``base`` and differ at ``revision``."""
    old = reader.get_historical_resolver(base)
    new = reader.get_historical_resolver(revision)
    candidates: set[generic.Reference] = set()
    for number in range(base + 1, revision + 1):
        between = reader.get_historical_resolver(number)
        candidates |= {ref for ref in between.explicit_refs_in_revision()
                       if not old.is_ref_unassignable(ref)}
        candidates |= set(between.refs_freed_in_revision())
    out = set()
    for ref in candidates:
        try:
            if not _equal(old(ref), new(ref)):
                out.add(ref)
        except Exception:  # noqa: BLE001 - an unreadable rewrite is a change too
            out.add(ref)
    return out


def _deps(resolver: HistoricalResolver, value) -> set[generic.Reference]:
    try:
        return resolver.collect_dependencies(value)
    except Exception:  # noqa: BLE001 - unreadable: no known dependencies
        return set()


def _appearance_changed(old: HistoricalResolver, ref: generic.Reference, rewritten: set
                        ) -> bool:
    """Whether the annotation or field ``ref``, or its appearance streams, were rewritten
    (not what it merely points at: a widget's /P is the whole page)."""
    if ref in rewritten:
        return True
    appearance = _raw(old(ref), "/AP")
    return appearance is not None and bool(_deps(old, appearance) & rewritten)


def _raw(container, key):
    try:
        return container.raw_get(key)
    except KeyError:
        return None


def _changed(old_value, new_value, old: HistoricalResolver, rewritten: set,
             deep: bool = True) -> bool:
    """Whether a value differs, or an object it uses was rewritten (only the object it
    names when not ``deep``: catalog entries point at pages, which are judged apart)."""
    if not _equal(old_value, new_value):
        return True
    if old_value is None:
        return False
    if not deep:
        return isinstance(old_value, generic.IndirectObject) and old_value.reference in rewritten
    return bool(_deps(old, old_value) & rewritten)


# --- annotations --------------------------------------------------------------------------

def _appearance_streams(annot) -> Iterator[generic.StreamObject]:
    try:
        normal = annot["/AP"]["/N"]
    except (KeyError, TypeError):
        return
    if isinstance(normal, generic.StreamObject):
        yield normal
    elif isinstance(normal, generic.DictionaryObject):
        for state in normal.values():
            if isinstance(state.get_object(), generic.StreamObject):
                yield state.get_object()


def _transparent(stream: generic.StreamObject) -> bool:
    try:
        states = stream["/Resources"]["/ExtGState"]
    except (KeyError, TypeError):
        return False
    for state in states.values():
        state = state.get_object()
        blend = state.get("/BM")
        if blend is not None and blend not in ("/Normal", "/Compatible"):
            return True
        if float(state.get("/ca", 1)) < 1:
            return True
    return False


def annotation_kind(annot: generic.DictionaryObject) -> str:
    """Return COMMENT if the annotation cannot hide what lies under it, else OVERLAY."""
    if annot.get("/Subtype") not in COMMENT_SUBTYPES:
        return OVERLAY
    try:
        x0, y0, x1, y1 = (float(v) for v in annot["/Rect"])
        small = abs(x1 - x0) <= NOTE_ICON_MAX and abs(y1 - y0) <= NOTE_ICON_MAX
    except (KeyError, TypeError, ValueError):
        small = False
    for stream in _appearance_streams(annot):
        try:
            ops = set(TOKEN.findall(stream.data))
        except Exception:  # noqa: BLE001 - an unreadable appearance may paint anything
            return OVERLAY
        if ops & PAINTS_CONTENT:
            return OVERLAY
        if ops & FILLS and not small and not _transparent(stream):
            return OVERLAY
    return COMMENT


# --- pages ----------------------------------------------------------------------------------

def _page_changes(old: HistoricalResolver, new: HistoricalResolver, rewritten: set
                  ) -> Iterator[Change]:
    try:
        old_pages = list(page_refs(old.root["/Pages"]))
        new_pages = list(page_refs(new.root["/Pages"]))
    except Exception:  # noqa: BLE001
        yield Change(PAGES, "", "页面结构无法读取", "the page tree cannot be read")
        return
    for index, ref in enumerate(new_pages, start=1):
        if ref not in old_pages:
            yield Change(PAGES, str(index), f"新增了第 {index} 页", f"page {index} was added")
    for index, ref in enumerate(old_pages, start=1):
        if ref not in new_pages:
            yield Change(PAGES, str(index), f"删除了第 {index} 页", f"page {index} was removed")
    kept = [ref for ref in old_pages if ref in new_pages]
    if kept != [ref for ref in new_pages if ref in old_pages]:
        yield Change(PAGES, "", "页面顺序被改变", "the pages were reordered")
    for ref in kept:
        yield from _one_page(old, new, ref, new_pages.index(ref) + 1, rewritten)
    old_root, new_root = old.root.raw_get("/Pages"), new.root.raw_get("/Pages")
    old_tree, new_tree = old_root.get_object(), new_root.get_object()
    shared = {key for key in set(old_tree) | set(new_tree) if key not in ("/Kids", "/Count")
              and _changed(_raw(old_tree, key), _raw(new_tree, key), old, rewritten, deep=False)}
    if shared:
        yield Change(PAGE_RESOURCES, "", "所有页面共用的属性被修改",
                     f"properties shared by every page changed ({', '.join(sorted(shared))})")


def _one_page(old, new, ref, number: int, rewritten: set) -> Iterator[Change]:
    old_page, new_page = old(ref), new(ref)
    if _changed(_raw(old_page, "/Contents"), _raw(new_page, "/Contents"), old, rewritten):
        yield Change(PAGE_CONTENT, str(number), f"第 {number} 页内容被修改",
                     f"page {number} content changed")
    if _changed(_raw(old_page, "/Resources"), _raw(new_page, "/Resources"), old, rewritten):
        yield Change(PAGE_RESOURCES, str(number), f"第 {number} 页的字体或图像被修改",
                     f"the fonts or images of page {number} changed")
    others = {key for key in set(old_page) | set(new_page)
              if key not in ("/Contents", "/Resources", "/Annots", "/Parent")
              and _changed(_raw(old_page, key), _raw(new_page, key), old, rewritten, deep=False)}
    if others:
        yield Change(PAGE_PROPERTIES, str(number), f"第 {number} 页的页面属性被修改",
                     f"page {number} properties changed ({', '.join(sorted(others))})")
    old_annots = _annot_refs(old_page)
    new_annots = _annot_refs(new_page)
    for annot_ref in old_annots:
        annot = old(annot_ref)
        if annot_ref not in new_annots:
            yield Change(ANNOTATION_CHANGED, str(number), f"删除了第 {number} 页上的批注",
                         f"an annotation was removed from page {number}")
        elif annot.get("/Subtype") != "/Widget" and _appearance_changed(old, annot_ref,
                                                                         rewritten):
            yield Change(ANNOTATION_CHANGED, str(number), f"第 {number} 页上的批注被修改",
                         f"an annotation on page {number} changed")
    for annot_ref in new_annots:
        if annot_ref in old_annots:
            continue
        annot = new(annot_ref)
        subtype = str(annot.get("/Subtype", "/?"))[1:]
        if subtype == "Widget":
            continue  # a form field's widget: the field changes say what it is
        if annotation_kind(annot) == COMMENT:
            yield Change(COMMENT, str(number), f"第 {number} 页新增了 {subtype} 批注",
                         f"a {subtype} annotation was added on page {number}")
        else:
            yield Change(OVERLAY, str(number),
                         f"第 {number} 页新增的 {subtype} 批注覆盖在页面内容之上",
                         f"a {subtype} annotation added on page {number} paints over "
                         "the page")


def _annot_refs(page) -> list[generic.Reference]:
    raw = _raw(page, "/Annots")
    if raw is None:
        return []
    try:
        return [item.reference for item in raw.get_object()
                if isinstance(item, generic.IndirectObject)]
    except Exception:  # noqa: BLE001
        return []


# --- form fields ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Field:
    ref: generic.Reference | None
    kind: str | None
    value: object
    widgets: tuple


def _walk_fields(items, prefix: str, inherited_kind, seen: set) -> Iterator[tuple[str, _Field]]:
    for item in items:
        if not isinstance(item, generic.IndirectObject) or item.reference in seen:
            continue
        seen.add(item.reference)
        node = item.get_object()
        if not isinstance(node, generic.DictionaryObject):
            continue
        partial = _raw(node, "/T")
        name = f"{prefix}.{partial}" if prefix and partial is not None else (
            str(partial) if partial is not None else prefix)
        kind = node.get("/FT", inherited_kind)
        try:
            kids = list(node["/Kids"])
        except (KeyError, TypeError):
            kids = []
        named_kids = [k for k in kids if isinstance(k.get_object(), generic.DictionaryObject)
                      and "/T" in k.get_object()]
        if named_kids:
            yield from _walk_fields(named_kids, name, kind, seen)
        widgets = tuple(k.reference for k in kids if isinstance(k, generic.IndirectObject)
                        and k not in named_kids) or (item.reference,)
        if not named_kids or len(named_kids) < len(kids):
            yield name, _Field(item.reference, kind, _raw(node, "/V"), widgets)


def _fields(resolver: HistoricalResolver) -> dict[str, _Field]:
    try:
        form = resolver.root["/AcroForm"]
        return dict(_walk_fields(form["/Fields"], "", None, set()))
    except Exception:  # noqa: BLE001 - no form (or an unreadable one): no fields
        return {}


def _added(kind: str) -> str:
    return "a document timestamp" if kind == DOCUMENT_TIMESTAMP else "a signature"


def _signature_kind(value) -> str:
    try:
        sig = value.get_object()
        if sig.get("/Type") == "/DocTimeStamp" or sig.get("/SubFilter") == "/ETSI.RFC3161":
            return DOCUMENT_TIMESTAMP
    except Exception:  # noqa: BLE001
        pass
    return SIGNATURE


def _field_changes(old, new, rewritten: set) -> Iterator[Change]:
    before, after = _fields(old), _fields(new)
    for name, field in after.items():
        if name in before:
            continue
        if field.kind == "/Sig" and field.value is None:
            yield Change(SIGNATURE_FIELD_ADDED, name, f"新增了空签字栏 {name}",
                         f"an empty signature field {name} was added")
        elif field.kind == "/Sig":
            kind = _signature_kind(field.value)
            yield Change(kind, name, f"签字栏 {name} 中新增了签名",
                         f"{_added(kind)} was added in field {name}")
        else:
            yield Change(FIELD_CHANGED, name, f"新增了表单字段 {name}",
                         f"a form field {name} was added")
    for name, field in before.items():
        now = after.get(name)
        if now is None:
            yield Change(FIELD_CHANGED, name, f"删除了表单字段 {name}",
                         f"the form field {name} was removed")
            continue
        value_changed = _changed(field.value, now.value, old, rewritten, deep=False)
        if value_changed and field.kind == "/Sig" and field.value is None:
            kind = _signature_kind(now.value)
            yield Change(kind, name, f"签字栏 {name} 被签署",
                         f"{_added(kind)} was added in field {name}")
        elif value_changed and field.kind == "/Sig":
            yield Change(FIELD_CHANGED, name, f"签字栏 {name} 中已有的签名被改动",
                         f"the signature in field {name} was changed")
        elif value_changed:
            yield Change(FIELD_FILLED, name, f"填写了表单字段 {name}",
                         f"the form field {name} was filled in")
        elif any(_appearance_changed(old, ref, rewritten)
                 for ref in {field.ref, *field.widgets} if ref is not None):
            yield Change(FIELD_CHANGED, name, f"表单字段 {name} 的外观或属性被修改",
                         f"the appearance or properties of field {name} changed")


# --- document-level entries -------------------------------------------------------------------

def _catalog_changes(old, new, rewritten: set) -> Iterator[Change]:
    old_root, new_root = old.root, new.root
    keys = {key for key in set(old_root) | set(new_root) if key not in IGNORED_CATALOG
            and _changed(_raw(old_root, key), _raw(new_root, key), old, rewritten, deep=False)}
    if keys:
        yield Change(CATALOG, ", ".join(sorted(keys)), "文档级设置被修改",
                     f"document-level entries changed ({', '.join(sorted(keys))})")
    old_perms, new_perms = _raw(old_root, "/Perms"), _raw(new_root, "/Perms")
    if old_perms is None and new_perms is not None:
        yield Change(CERTIFICATION, "", "文档被认证（DocMDP）",
                     "the document was certified (DocMDP)")
    elif _changed(old_perms, new_perms, old, rewritten, deep=False):
        yield Change(CATALOG, "/Perms", "文档的认证权限被修改",
                     "the document's certification permissions changed")
    old_dss, new_dss = _raw(old_root, "/DSS"), _raw(new_root, "/DSS")
    if new_dss is not None and (old_dss is None or _changed(old_dss, new_dss, old, rewritten)
                                or _grew(old, new, new_dss)):
        yield Change(REVISION_DATA, "", "新增或更新了验证数据（DSS）",
                     "revision data (DSS) was added or updated")
    if (_changed(_raw(old_root, "/Metadata"), _raw(new_root, "/Metadata"), old, rewritten)
            or _changed(_raw(old.trailer_view, "/Info"), _raw(new.trailer_view, "/Info"),
                        old, rewritten)):
        yield Change(METADATA, "", "文档元数据被更新", "the document metadata was updated")
    old_form, new_form = _raw(old_root, "/AcroForm"), _raw(new_root, "/AcroForm")
    old_form = old_form.get_object() if old_form is not None else generic.DictionaryObject()
    new_form = new_form.get_object() if new_form is not None else generic.DictionaryObject()
    form_keys = {key for key in set(old_form) | set(new_form) if key not in IGNORED_FORM
                 and _changed(_raw(old_form, key), _raw(new_form, key), old, rewritten,
                              deep=False)}
    if form_keys:
        yield Change(FORM, ", ".join(sorted(form_keys)), "表单的全局设置被修改",
                     f"form-wide settings changed ({', '.join(sorted(form_keys))})")


def _grew(old: HistoricalResolver, new: HistoricalResolver, value) -> bool:
    try:
        return bool(new.collect_dependencies(value, since_revision=old.revision + 1))
    except Exception:  # noqa: BLE001
        return False


def describe(reader: PdfFileReader, base: int, revision: int) -> list[Change]:
    """Return every change from revision ``base`` to revision ``revision`` of ``reader``."""
    old = reader.get_historical_resolver(base)
    new = reader.get_historical_resolver(revision)
    rewritten = rewritten_objects(reader, base, revision)
    return [*_page_changes(old, new, rewritten), *_field_changes(old, new, rewritten),
            *_catalog_changes(old, new, rewritten)]
