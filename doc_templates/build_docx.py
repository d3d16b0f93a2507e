"""Regenerate the four shipped seed templates (``*/template.docx``).

The .docx files are committed and are what the pipeline reads; this script is how they were
authored, so that a layout change is one reviewed diff instead of a hand edit in Word.
Run it with ``python -m doc_templates.build_docx`` and commit the result.

Layout rules every template follows: A4, a centred title, the document number under it, one
bordered four-column table with the seed's fields in the seed's order, lists and tables as
real table rows (docxtpl ``{%tr %}`` loops), a 备注 row, and a signature block with one row per
role member. Each signature cell carries a white 1 pt marker ``[[sig:ROLE]]`` (or
``[[sig:ROLE:N]]`` for a parallel group) that the signing step finds in the PDF to place the
signature field inside that cell's borders; the signer's date is part of the signature
stamp, so there is no date column to leave blank. CJK text is set in Noto Serif/Sans CJK SC
with the East-Asian language zh-CN; Latin text keeps a Latin language (en-US) so that words
break between words, never inside one. Pages after the first repeat the title and number
in their header, and the rows before the signature block keep with it, so the block is never
alone on a page.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor

SERIF = "Noto Serif CJK SC"
SANS = "Noto Sans CJK SC"
HERE = Path(__file__).resolve().parent
COLUMN_WIDTHS_CM = (3.2, 4.8, 3.2, 4.8)
# The signature cell spans the middle two columns (8 cm) and is this tall: room for the seal
# and the signer's name and date-time at a legible size (signing/appearance.py).
SIGNATURE_ROW_CM = 2.3
LABEL_SHADE = "F2F2F2"
SECTION_SHADE = "D9E2F3"


# --- row specs: small frozen dataclasses, one per kind of table row -----------------------


@dataclass(frozen=True)
class Pair:
    """Two label/value pairs side by side."""

    label_a: str
    value_a: str
    label_b: str
    value_b: str


@dataclass(frozen=True)
class Full:
    """One label and a value spanning the three remaining columns."""

    label: str
    value: str
    tall: bool = False


@dataclass(frozen=True)
class Section:
    """A shaded heading row spanning all four columns."""

    text: str


@dataclass(frozen=True)
class Loop:
    """A header row, then one real table row per item of a list (docxtpl ``{%tr for %}``).

    ``columns`` are (header, cell expression, span); spans add up to 4. ``empty`` is shown in
    a single row when the list is empty or missing.
    """

    var: str
    item: str
    columns: tuple[tuple[str, str, int], ...]
    empty: str = "（无）"


@dataclass(frozen=True)
class Signatures:
    """The signature block: one row per member of each role, in signing order."""

    roles: tuple[tuple[str, str, bool], ...]  # (role key, Chinese label, parallel group?)


@dataclass(frozen=True)
class TemplateLayout:
    key: str
    title: str
    subtitle: str
    number_label: str
    rows: tuple[object, ...]


# --- low-level XML helpers ----------------------------------------------------------------


def _set_run_fonts(run, font: str = SERIF, size: float | None = None, bold: bool = False):
    run.font.name = font
    rpr = run._element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attr), font)
    if size:
        run.font.size = Pt(size)
    run.font.bold = bold


def _shade(cell, fill: str) -> None:
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), fill)
    cell._element.get_or_add_tcPr().append(shd)


def _row_height(row, cm: float) -> None:
    tr_pr = row._tr.get_or_add_trPr()
    height = OxmlElement("w:trHeight")
    height.set(qn("w:val"), str(int(cm * 567)))
    height.set(qn("w:hRule"), "atLeast")
    tr_pr.append(height)


def _cant_split(row) -> None:
    tr_pr = row._tr.get_or_add_trPr()
    tr_pr.append(OxmlElement("w:cantSplit"))


def _keep_with_next(*cells) -> None:
    """Ask the layout to keep these rows on the page of the row after them."""
    for cell in cells:
        for paragraph in cell.paragraphs:
            paragraph.paragraph_format.keep_with_next = True


def _write(cell, text: str, *, bold=False, size=10.5, align=None, font=SERIF) -> None:
    paragraph = cell.paragraphs[0]
    paragraph.paragraph_format.space_before = Pt(2)
    paragraph.paragraph_format.space_after = Pt(2)
    if align is not None:
        paragraph.alignment = align
    if text:
        _set_run_fonts(paragraph.add_run(text), font=font, size=size, bold=bold)
    cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER


def _label(cell, text: str) -> None:
    _write(cell, text, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    _shade(cell, LABEL_SHADE)


def _cells(table, spans: list[int]):
    """Add a row and merge its cells into groups of the given spans; return one cell per group."""
    row = table.add_row()
    cells, start = [], 0
    for span in spans:
        cell = row.cells[start]
        if span > 1:
            cell = cell.merge(row.cells[start + span - 1])
        cells.append(cell)
        start += span
    return row, cells


def _tag_row(table, tag: str) -> None:
    """A row holding only a docxtpl ``{%tr %}`` tag; docxtpl replaces the whole row by it."""
    _, (cell,) = _cells(table, [4])
    _write(cell, tag, size=8)


def _add_field_codes(paragraph, instruction: str) -> None:
    """Insert a Word field (PAGE, NUMPAGES) so page numbers are live in every viewer."""
    run = paragraph.add_run()
    _set_run_fonts(run, size=9)
    for kind, text in (("begin", None), (None, instruction), ("separate", None), (None, "1"),
                       ("end", None)):
        if kind:
            element = OxmlElement("w:fldChar")
            element.set(qn("w:fldCharType"), kind)
        elif text == instruction:
            element = OxmlElement("w:instrText")
            element.set(qn("xml:space"), "preserve")
            element.text = f" {instruction} "
        else:
            element = OxmlElement("w:t")
            element.text = text
        run._element.append(element)


def _document_defaults(doc) -> None:
    """Serif CJK SC everywhere, language zh-CN for East-Asian text, so LibreOffice and Word
    choose the Simplified Chinese glyph variants rather than the Japanese ones."""
    styles = doc.styles.element
    rpr_default = styles.find(qn("w:docDefaults")).find(qn("w:rPrDefault")).find(qn("w:rPr"))
    for child in list(rpr_default):
        if child.tag in (qn("w:rFonts"), qn("w:lang")):
            rpr_default.remove(child)
    fonts = OxmlElement("w:rFonts")
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attr), SERIF)
    rpr_default.insert(0, fonts)
    lang = OxmlElement("w:lang")
    # w:val is the language of Latin text: a CJK language there lets the layout break
    # English words anywhere, as it breaks Chinese.
    lang.set(qn("w:val"), "en-US")
    lang.set(qn("w:eastAsia"), "zh-CN")
    lang.set(qn("w:bidi"), "ar-SA")
    rpr_default.append(lang)
    normal = doc.styles["Normal"]
    normal.font.name = SERIF
    normal.font.size = Pt(10.5)
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), SERIF)


def _continuation_header(section, layout: TemplateLayout) -> None:
    """Pages after the first carry the title and the number, so a page that holds only the
    end of the table (or the signature block) still says which document it belongs to."""
    paragraph = section.header.paragraphs[0]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    _set_run_fonts(paragraph.add_run(f"{layout.title}　{layout.number_label}："), font=SANS,
                   size=9, bold=True)
    _set_run_fonts(paragraph.add_run("{{ number }}"), size=9)
    border = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for attr, value in (("w:val", "single"), ("w:sz", "4"), ("w:space", "1"),
                        ("w:color", "808080")):
        bottom.set(qn(attr), value)
    border.append(bottom)
    paragraph._p.get_or_add_pPr().append(border)
    section.first_page_header.is_linked_to_previous = False


# --- the builder --------------------------------------------------------------------------


def build(layout: TemplateLayout) -> Document:
    """Return the python-docx Document for one template layout."""
    doc = Document()
    _document_defaults(doc)
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.left_margin = section.right_margin = Cm(2.5)
    section.top_margin, section.bottom_margin = Cm(2.2), Cm(2.0)

    section.different_first_page_header_footer = True
    for footer in (section.footer.paragraphs[0], section.first_page_footer.paragraphs[0]):
        footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
        for text, field in (("第 ", "PAGE"), (" 页 / 共 ", "NUMPAGES"), (" 页", None)):
            _set_run_fonts(footer.add_run(text), size=9)
            if field:
                _add_field_codes(footer, field)
    _continuation_header(section, layout)

    title = doc.paragraphs[0] if doc.paragraphs else doc.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    title.paragraph_format.space_after = Pt(2)
    _set_run_fonts(title.add_run(layout.title), font=SANS, size=20, bold=True)
    subtitle = doc.add_paragraph()
    subtitle.alignment = WD_ALIGN_PARAGRAPH.CENTER
    subtitle.paragraph_format.space_after = Pt(6)
    _set_run_fonts(subtitle.add_run(layout.subtitle), size=11)
    number = doc.add_paragraph()
    number.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    number.paragraph_format.space_after = Pt(4)
    _set_run_fonts(number.add_run(f"{layout.number_label}："), size=10.5, bold=True)
    _set_run_fonts(number.add_run("{{ number }}"), size=10.5)

    table = doc.add_table(rows=0, cols=4)
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False

    content_rows: list[list] = []  # the cells of the rows added so far (not docxtpl tags)
    for position, spec in enumerate(layout.rows):
        if isinstance(spec, Section) and isinstance(
                next(iter(layout.rows[position + 1:]), None), Signatures):
            # The last rows before the signature block go to its page with it.
            for cells in content_rows[-2:]:
                _keep_with_next(*cells)
        if isinstance(spec, Pair):
            _, cells = _cells(table, [1, 1, 1, 1])
            _label(cells[0], spec.label_a)
            _write(cells[1], spec.value_a)
            _label(cells[2], spec.label_b)
            _write(cells[3], spec.value_b)
            content_rows.append(cells)
        elif isinstance(spec, Full):
            row, cells = _cells(table, [1, 3])
            _label(cells[0], spec.label)
            _write(cells[1], spec.value)
            if spec.tall:
                _row_height(row, 1.6)
            content_rows.append(cells)
        elif isinstance(spec, Section):
            _, (cell,) = _cells(table, [4])
            _write(cell, spec.text, bold=True, font=SANS)
            _shade(cell, SECTION_SHADE)
            _keep_with_next(cell)
        elif isinstance(spec, Loop):
            _, headers = _cells(table, [span for _, _, span in spec.columns])
            for cell, (header, _, _) in zip(headers, spec.columns, strict=True):
                _label(cell, header)
            _tag_row(table, f"{{%tr for {spec.item} in ({spec.var} or []) %}}")
            _, values = _cells(table, [span for _, _, span in spec.columns])
            for cell, (_, expression, _) in zip(values, spec.columns, strict=True):
                _write(cell, expression)
            _tag_row(table, "{%tr endfor %}")
            _tag_row(table, f"{{%tr if not {spec.var} %}}")
            _, (empty,) = _cells(table, [4])
            _write(empty, spec.empty, align=WD_ALIGN_PARAGRAPH.CENTER)
            _tag_row(table, "{%tr endif %}")
        elif isinstance(spec, Signatures):
            _, headers = _cells(table, [1, 2, 1])
            for cell, header in zip(headers, ("签署角色", "签字 / 签章（含签署时间）",
                                              "部门及姓名"), strict=True):
                _label(cell, header)
            _keep_with_next(*headers)
            for role, label, parallel in spec.roles:
                _tag_row(table, f"{{%tr for s in signers.{role} %}}")
                marker = f"[[sig:{role}:{{{{ loop.index }}}}]]" if parallel else f"[[sig:{role}]]"
                row, cells = _cells(table, [1, 2, 1])
                _row_height(row, SIGNATURE_ROW_CM)
                _cant_split(row)
                _label(cells[0], label)
                marker_paragraph = cells[1].paragraphs[0]
                run = marker_paragraph.add_run(marker)
                _set_run_fonts(run, size=1)
                run.font.color.rgb = RGBColor(0xFF, 0xFF, 0xFF)
                cells[1].vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.TOP
                _write(cells[2], "{{ s.dept }} {{ s.name }}")
                _keep_with_next(*cells)
                _tag_row(table, "{%tr endfor %}")
        else:
            raise TypeError(f"unknown row spec {spec!r}")

    grid = table._tbl.tblGrid
    for column, width in zip(grid.findall(qn("w:gridCol")), COLUMN_WIDTHS_CM, strict=True):
        column.set(qn("w:w"), str(int(width * 567)))
    for row in table.rows:
        for cell, width in zip(row.cells, COLUMN_WIDTHS_CM, strict=False):
            cell.width = Cm(width)
    return doc


LAYOUTS = (
    TemplateLayout(
        key="requirement_confirmation",
        title="需求确认函",
        subtitle="业务需求沟通确认表",
        number_label="需求编号",
        rows=(
            Pair("需求方", "{{ requester.dept }} {{ requester.name }} {{ requester.title }}",
                 "承接方", "{{ receiver.dept }} {{ receiver.name }} {{ receiver.title }}"),
            Full("需求背景与目标", "{{ background }}", tall=True),
            Section("具体需求详情"),
            Loop("details", "item", (("序号", "{{ loop.index }}", 1),
                                     ("功能模块 / 需求内容", "{{ item }}", 3))),
            Pair("期望交付时间", "{{ expected_delivery }}", "优先级", "{{ priority }}"),
            Full("资源支持需求", "{{ resources_needed }}"),
            Full("承接方评估意见", "{{ receiver_assessment }}", tall=True),
            Full("备注", "{{ remarks }}"),
            Section("共识确认（需求方、承接方签字确认）"),
            Signatures((("requester", "需求方", False), ("receiver", "承接方", False))),
        ),
    ),
    TemplateLayout(
        key="progress_sync",
        title="跨部门进度同步表",
        subtitle="项目 / 任务进度同步",
        number_label="同步编号",
        rows=(
            Full("项目/任务名称", "{{ project }}"),
            Pair("责任部门", "{{ responsible_dept }}", "当前阶段", "{{ stage }}"),
            Full("本阶段进展", "{{ progress }}", tall=True),
            Full("存在风险与问题", "{{ risks }}", tall=True),
            Section("需协同支持事项"),
            Loop("support_requests", "req", (("序号", "{{ loop.index }}", 1),
                                             ("支持部门", "{{ req.dept }}", 1),
                                             ("支持内容", "{{ req.content }}", 1),
                                             ("完成时间", "{{ req.due }}", 1))),
            Full("下一步计划", "{{ next_steps }}", tall=True),
            Full("同步日期", "{{ sync_date }}"),
            Full("备注", "{{ remarks }}"),
            Section("签字确认（责任部门、各支持部门）"),
            Signatures((("responsible", "责任部门", False), ("supporter", "支持部门", True))),
        ),
    ),
    TemplateLayout(
        key="issue_tracking",
        title="问题协调跟踪表",
        subtitle="跨部门问题协调与跟踪",
        number_label="问题编号",
        rows=(
            Full("问题描述", "{{ description }}", tall=True),
            Pair("问题发生部门", "{{ reporting_dept }}", "责任部门", "{{ responsible_dept }}"),
            Full("解决措施与方案", "{{ solution }}", tall=True),
            Full("计划完成时限", "{{ due }}"),
            Section("协同部门"),
            Loop("collaborators", "c", (("序号", "{{ loop.index }}", 1),
                                        ("协同部门", "{{ c.dept }}", 1),
                                        ("配合事项", "{{ c.role }}", 2))),
            Section("进展更新"),
            Loop("progress_updates", "u", (("序号", "{{ loop.index }}", 1),
                                           ("日期", "{{ u.date }}", 1),
                                           ("进展情况", "{{ u.text }}", 2))),
            Full("结果确认", "{{ result_confirmation }}", tall=True),
            Full("备注", "{{ remarks }}"),
            Section("签字确认（责任部门确认结果，问题提出方验收）"),
            Signatures((("responsible", "责任部门", False), ("reporter", "问题提出方", False))),
        ),
    ),
    TemplateLayout(
        key="meeting_minutes",
        title="会议纪要",
        subtitle="会议沟通纪要",
        number_label="纪要编号",
        rows=(
            Full("会议主题", "{{ topic }}"),
            Pair("开始时间", "{{ start }}", "结束时间", "{{ end }}"),
            Full("会议地点", "{{ location }}"),
            Section("参会人员"),
            Loop("attendees", "a", (("序号", "{{ loop.index }}", 1),
                                    ("姓名", "{{ a.name }}", 1),
                                    ("部门", "{{ a.dept }}", 1),
                                    ("职务", "{{ a.title }}", 1))),
            Section("会议议程"),
            Loop("agenda", "item", (("序号", "{{ loop.index }}", 1), ("议题", "{{ item }}", 3))),
            Full("讨论要点", "{{ discussion }}", tall=True),
            Section("决议事项"),
            Loop("resolutions", "item", (("序号", "{{ loop.index }}", 1),
                                         ("决议", "{{ item }}", 3))),
            Section("行动项"),
            Loop("action_items", "t", (("序号", "{{ loop.index }}", 1),
                                       ("任务", "{{ t.task }}", 1),
                                       ("负责人", "{{ t.owner }}", 1),
                                       ("截止日期", "{{ t.due }}", 1))),
            Pair("纪要分发", "{{ distribution }}", "归档位置", "{{ archive_folder }}"),
            Full("备注", "{{ remarks }}"),
            Section("签字确认（主持人、各参会部门负责人）"),
            Signatures((("host", "会议主持人", False), ("attendee", "参会部门负责人", True))),
        ),
    ),
)


# Parts of python-docx's default template that nothing here uses. Dropping them (and the
# ~340 unused style definitions) halves LibreOffice's load time for every rendered document.
UNUSED_PARTS = ("word/stylesWithEffects.xml", "docProps/thumbnail.jpeg", "customXml/",
                "word/webSettings.xml")
UNUSED_REFERENCE = re.compile(
    r"<(?:Relationship|Override)[^>]*(?:stylesWithEffects|thumbnail|customXml|webSettings)"
    r"[^>]*/>")


def _prune_styles(doc) -> None:
    """Keep only the styles the document uses (and what they are based on)."""
    styles = doc.styles.element
    used = {"Normal", "TableNormal", "DefaultParagraphFont", "NoList"}
    parts = [doc.element, *(part._element for s in doc.sections for part in (
        s.header, s.footer, s.first_page_header, s.first_page_footer))]
    for part in parts:
        for tag in ("w:pStyle", "w:rStyle", "w:tblStyle"):
            used |= {el.get(qn("w:val")) for el in part.iter(qn(tag))}
    by_id = {el.get(qn("w:styleId")): el for el in styles.findall(qn("w:style"))}
    pending = list(used)
    while pending:
        element = by_id.get(pending.pop())
        if element is None:
            continue
        for link in ("w:basedOn", "w:link", "w:next"):
            ref = element.find(qn(link))
            if ref is not None and ref.get(qn("w:val")) not in used:
                used.add(ref.get(qn("w:val")))
                pending.append(ref.get(qn("w:val")))
    for style_id, element in by_id.items():
        if style_id not in used:
            styles.remove(element)
    latent = styles.find(qn("w:latentStyles"))
    if latent is not None:
        styles.remove(latent)


def save_lean(doc, path: Path) -> None:
    """Save ``doc`` without the default template's unused parts."""
    _prune_styles(doc)
    buffer = io.BytesIO()
    doc.save(buffer)
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.startswith(UNUSED_PARTS):
                continue
            data = src.read(item.filename)
            if item.filename.endswith(".rels") or item.filename == "[Content_Types].xml":
                text = data.decode("utf-8")
                text = UNUSED_REFERENCE.sub("", text)
                data = text.encode("utf-8")
            dst.writestr(item, data)


def main() -> None:
    for layout in LAYOUTS:
        folder = HERE / layout.key
        folder.mkdir(exist_ok=True)
        save_lean(build(layout), folder / "template.docx")
        print(f"wrote {folder / 'template.docx'}")


if __name__ == "__main__":
    main()
