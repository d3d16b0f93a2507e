"""What the pages call things: statuses, ledger events, roles and people by name, and times
in the service's one time zone (``Settings.timezone``, Asia/Shanghai by default), never as
ISO strings with a ``T``."""

from __future__ import annotations

from datetime import datetime, tzinfo

from pipeline.documents.events import EventKind
from pipeline.documents.state import Status
from pipeline.errors import UnknownTemplate
from pipeline.forms.manifest import get_template

STATUS = {
    Status.AWAITING: ("待签署", "awaiting signatures"),
    Status.DECLINED: ("已拒签", "declined"),
    Status.VOIDED: ("已作废", "voided"),
    Status.SUPERSEDED: ("已由新版本取代", "superseded"),
    Status.COMPLETED: ("已签齐，待关闭", "signed, to be closed"),
    Status.CLOSED: ("已关闭归档", "closed"),
}
EVENTS = {
    EventKind.CREATED: ("创建", "created"),
    EventKind.RENDERED: ("生成文档", "rendered"),
    EventKind.PREPARED: ("设置签字栏", "signature fields prepared"),
    EventKind.SENT: ("发送签署通知", "sent for signature"),
    EventKind.REMINDED: ("提醒", "reminded"),
    EventKind.ESCALATED: ("逾期上报", "escalated"),
    EventKind.DEEMED_CONSENT: ("未反馈视为同意", "deemed consent"),
    EventKind.SIGNED: ("签署", "signed"),
    EventKind.UPLOAD_ACCEPTED: ("上传会签文件（通过）", "countersigned upload accepted"),
    EventKind.UPLOAD_REJECTED: ("上传会签文件（被拒）", "countersigned upload refused"),
    EventKind.DECLINED: ("拒签", "declined"),
    EventKind.VOIDED: ("作废", "voided"),
    EventKind.REASSIGNED: ("转交签字步骤", "step reassigned"),
    EventKind.PROGRESS_ENTRY: ("进展更新", "progress entry"),
    EventKind.ACTION_ITEM_DONE: ("行动项完成", "action item done"),
    EventKind.RESOLVED: ("填写结果确认", "result recorded"),
    EventKind.SUPERSEDED: ("修订为新版本", "revised into a new version"),
    EventKind.CLOSED: ("关闭（长期验证）", "closed (long-term validation)"),
    EventKind.ARCHIVED: ("归档", "archived"),
    EventKind.VERIFIED: ("验证", "verified"),
}
DONE = {
    "created": ("文档已创建，已通知第一位签署方。",
                "Document created; the first signer was notified."),
    "signed": ("已签署。", "Signed."),
    "uploaded": ("会签文件已通过检查并接受。", "The countersigned file was checked and accepted."),
    "declined": ("已拒签，创建者和已签署方会收到通知。",
                 "Declined; the creator and earlier signers are told."),
    "closed": ("文档已关闭并归档。", "The document is closed and archived."),
    "progress": ("进展已记录。", "Progress recorded."),
    "action": ("行动项已标记完成。", "Action item marked done."),
    "voided": ("文档已作废。", "The document is void."),
    "reassigned": ("签字步骤已转交。", "The step was reassigned."),
    "resolved": ("结果确认已填写，文档已重新生成。",
                 "The result is recorded and the document rendered again."),
    "revised": ("已生成新版本并重新发起签署。", "The new version is out for signature."),
}


def pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def status_label(status: str, lang: str) -> str:
    return pick(STATUS.get(status, (status, status)), lang)


def event_label(kind: str, lang: str) -> str:
    return pick(EVENTS.get(kind, (kind, kind)), lang)


def role_label(template_key: str, role: str, lang: str) -> str:
    """Return the template's name for ``role`` (需求方 / Requester)."""
    try:
        spec = next((r for r in get_template(template_key).roles if r.key == role), None)
    except UnknownTemplate:
        spec = None
    return role if spec is None else pick((spec.label_zh, spec.label_en), lang)


def when(value: str | None, zone: tzinfo, seconds: bool = False) -> str:
    """Return an ISO time as ``2026-05-23 14:05`` in ``zone`` (a date stays a date)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if len(value) <= 10:
        return moment.date().isoformat()
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
