"""The certificate of completion: a PDF listing the document, every signer and every ledger
event with its hash, sealed with the system's own key when the document closes."""

from __future__ import annotations

import io
import json
from datetime import datetime

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Pt

from pipeline.documents.events import EventKind
from pipeline.documents.state import DocumentState
from pipeline.forms.manifest import Template

FONT = "Noto Sans CJK SC"
KIND_LABELS = {
    EventKind.CREATED: "创建 created", EventKind.RENDERED: "生成 rendered",
    EventKind.PREPARED: "准备签字栏 prepared", EventKind.SENT: "发送 sent",
    EventKind.SIGNED: "签署 signed", EventKind.UPLOAD_ACCEPTED: "接受上传 upload accepted",
    EventKind.UPLOAD_REJECTED: "拒绝上传 upload rejected", EventKind.REMINDED: "提醒 reminded",
    EventKind.ESCALATED: "升级 escalated", EventKind.DEEMED_CONSENT: "视为同意 deemed consent",
    EventKind.DECLINED: "拒签 declined", EventKind.VOIDED: "作废 voided",
    EventKind.REASSIGNED: "转交 reassigned", EventKind.PROGRESS_ENTRY: "进展 progress",
    EventKind.ACTION_ITEM_DONE: "行动项完成 action done", EventKind.CLOSED: "关闭 closed",
    EventKind.ARCHIVED: "归档 archived", EventKind.VERIFIED: "验证 verified",
}


def _font(run, size: float, bold: bool = False) -> None:
    run.font.name, run.font.size, run.font.bold = FONT, Pt(size), bold
    fonts = run._element.get_or_add_rPr().get_or_add_rFonts()
    fonts.set(qn("w:eastAsia"), FONT)


def _table(doc, header: list[str], rows: list[list[str]], size: float) -> None:
    table = doc.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, header, strict=True):
        _font(cell.paragraphs[0].add_run(text), size, bold=True)
    for values in rows:
        cells = table.add_row().cells
        for cell, text in zip(cells, values, strict=True):
            _font(cell.paragraphs[0].add_run(text), size)


def certificate_docx(state: DocumentState, template: Template, events: list[dict],
                     final_sha: str, zone) -> bytes:
    """Return the certificate of completion as a .docx (converted and sealed by the caller)."""
    def shown(at: str) -> str:
        return datetime.fromisoformat(at).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z")

    doc = Document()
    title = doc.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _font(title.add_run("完成证明"), 20, bold=True)
    subtitle = doc.add_paragraph()
    subtitle.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _font(subtitle.add_run("Certificate of Completion"), 11)
    facts = [
        ("文档 Document", f"{template.title_zh} ({template.title_en}) v{state.template_version}"),
        ("编号 Number", state.number),
        ("文档编号 ID", state.id),
        ("创建 Created", f"{shown(state.created_at)} · {state.creator}"),
        ("最终文件 SHA-256 Final PDF", final_sha),
    ]
    for label, value in facts:
        paragraph = doc.add_paragraph()
        _font(paragraph.add_run(f"{label}："), 10, bold=True)
        _font(paragraph.add_run(value), 10)
    heading = doc.add_paragraph()
    _font(heading.add_run("签署方 Signers"), 12, bold=True)
    signer_rows = []
    for member in state.members:
        signed = state.signed.get(member.field)
        if signed is None:
            how, when, fingerprint = "未签 not signed", "", ""
        elif signed.deemed:
            how, when, fingerprint = "视为同意（未签名）deemed consent, not a signature", \
                shown(signed.at), ""
        else:
            how, when = "数字签名 digital signature", shown(signed.at)
            fingerprint = signed.certificate_sha256 or ""
        signer_rows.append([member.role, member.party, how, when, fingerprint])
    _table(doc, ["角色 Role", "签署方 Party", "方式 How", "时间 Time",
                 "证书 SHA-256 Certificate"], signer_rows, 8)
    heading = doc.add_paragraph()
    _font(heading.add_run("台账事件 Ledger events"), 12, bold=True)
    event_rows = []
    for event in events:
        data = json.loads(event["data"])
        party = data.get("party") or ""
        event_rows.append([str(event["seq"]), shown(event["at"]),
                           KIND_LABELS.get(event["kind"], event["kind"]),
                           event["actor"] + (f" → {party}" if party and party != event["actor"]
                                             else ""),
                           event["hash"]])
    _table(doc, ["#", "时间 Time", "事件 Event", "执行者 Actor", "哈希 Hash"], event_rows, 7)
    note = doc.add_paragraph()
    _font(note.add_run("每个事件的哈希覆盖其内容与前一事件的哈希（哈希链）。本证明由系统密钥签章。"
                       " Each event's hash covers its content and the previous event's hash; "
                       "this certificate is sealed with the system's key."), 8)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
