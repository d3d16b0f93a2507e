"""The audit bundle: one zip an auditor verifies on another machine, with no data folder and
no network.

It holds the final PDF, the certificate of completion, the ledger extract with its chain
hashes, the trust roots and CRLs, the HTML report, ``audit.db`` (the same record as a SQLite
database for the auditor's own tools, its events checked against the extract), and
``manifest.json`` (SHA-256 of every file) with ``manifest.p7s``, a detached CMS signature of
the manifest by the system key. Changing any byte of any member breaks either a member's
hash or the manifest's signature. Bundles written before ``audit.db`` existed still verify.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import cms, pem
from asn1crypto import crl as asn1_crl
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms

from pipeline.audit.sqlite_export import AUDIT_DB, bundle_database, database_problems
from pipeline.audit.verify import report_html, verify_bytes
from pipeline.config import Settings
from pipeline.documents.events import EventKind
from pipeline.documents.repository import load_state, revision_store
from pipeline.errors import BadInput
from pipeline.record import ledger
from pipeline.record.files import write_atomic
from pipeline.record.store import sha256
from pipeline.signing_setup import local_ca, signing_environment
from signing.trust import TrustSettings, load_certificates, validation_context
from signing.validation import validate_pdf

MEMBERS = ("final.pdf", "certificate-of-completion.pdf", "ledger.json", "trust-roots.pem",
           "crls.pem", "report.html")


def export_bundle(settings: Settings, document_id: str, out: Path) -> dict[str, Any]:
    """Write the audit bundle of a closed, archived document to ``out``; return its manifest."""
    data, manifest = bundle_bytes(settings, document_id)
    write_atomic(out, data)
    return manifest


def bundle_bytes(settings: Settings, document_id: str) -> tuple[bytes, dict[str, Any]]:
    """Return the audit bundle (a ZIP) of a closed, archived document and its manifest."""
    state = load_state(settings, document_id)
    if not state.archive:
        raise BadInput("只能导出已关闭归档的文档，请先 close",
                       f"{document_id} is not closed and archived yet: run close first")
    store = revision_store(settings)
    package = json.loads(store.get(state.archive))
    env = signing_environment(settings)
    final = store.get(package["final_pdf"])
    report = verify_bytes(settings, final)
    members = {
        "final.pdf": final,
        "certificate-of-completion.pdf": store.get(package["certificate_of_completion"]),
        "ledger.json": ledger.canonical(package).encode("utf-8"),
        "trust-roots.pem": b"".join(pem.armor("CERTIFICATE", c.dump())
                                    for c in env.trust.roots),
        "crls.pem": b"".join(pem.armor("X509 CRL", c.dump()) for c in env.trust.crls),
        "report.html": report_html(report, f"{state.number} ({document_id})").encode("utf-8"),
        AUDIT_DB: bundle_database(settings, package["ledger"], report,
                                  datetime.now(settings.zone)),
    }
    return zip_bundle(settings, document_id, state.number, members)


def write_bundle(settings: Settings, document_id: str, number: str,
                 members: dict[str, bytes], out: Path) -> dict[str, Any]:
    """Write ``members`` with their manifest, signed by the system key, as the zip ``out``;
    return the manifest."""
    data, manifest = zip_bundle(settings, document_id, number, members)
    write_atomic(out, data)
    return manifest


def zip_bundle(settings: Settings, document_id: str, number: str,
               members: dict[str, bytes]) -> tuple[bytes, dict[str, Any]]:
    """Return ``members`` with their manifest, signed by the system key, as a zip (and the
    manifest)."""
    manifest = {"document": document_id, "number": number,
                "exported_at": datetime.now(UTC).isoformat(),
                "files": {name: sha256(data) for name, data in members.items()}}
    manifest_bytes = ledger.canonical(manifest).encode("utf-8")
    signer = local_ca(settings).system_signer()
    signature = asyncio.run(signer.async_sign_general_data(manifest_bytes, "sha256",
                                                           detached=True))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("manifest.json", manifest_bytes)
        archive.writestr("manifest.p7s", signature.dump())
    return buffer.getvalue(), manifest


def _bundle_trust(files: dict[str, bytes], roots_override: bytes | None) -> TrustSettings:
    roots = load_certificates(roots_override or files["trust-roots.pem"])
    crls = [asn1_crl.CertificateList.load(der)
            for _, _, der in pem.unarmor(files["crls.pem"], multiple=True)]
    return TrustSettings(roots=tuple(roots), crls=tuple(crls), allow_fetching=False)


def verify_bundle(path: Path, roots_override: bytes | None = None) -> dict[str, Any]:
    """Return the verdict on an audit bundle, offline; never raises on a damaged bundle."""
    problems: list[str] = []
    try:
        with zipfile.ZipFile(path) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        return {"valid": False, "problems": [f"无法读取审计包 / cannot read the bundle: {exc}"]}
    expected = {*MEMBERS, "manifest.json", "manifest.p7s"}
    if not expected <= set(files) or set(files) - expected - {AUDIT_DB}:
        return {"valid": False, "problems": [
            f"审计包内容不符 / the bundle holds {sorted(files)}, expected {sorted(expected)} "
            f"and {AUDIT_DB}"]}
    try:
        manifest = json.loads(files["manifest.json"])
        trust = _bundle_trust(files, roots_override)
    except (ValueError, KeyError) as exc:
        return {"valid": False, "problems": [f"清单或信任根损坏 / damaged manifest or trust "
                                             f"roots: {exc}"]}
    listed = manifest.get("files", {})
    optional = [AUDIT_DB] if AUDIT_DB in files or AUDIT_DB in listed else []
    for name in (*MEMBERS, *optional):
        if name not in files:
            problems.append(f"文件缺失 / {name} is missing (the manifest lists it)")
        elif sha256(files[name]) != listed.get(name):
            problems.append(f"文件被改动 / {name} was altered (its hash does not match the "
                            "manifest)")
    problems += _manifest_signature_problems(files, trust)
    final_report = validate_pdf(files["final.pdf"], trust, offline=True)
    if not final_report.valid:
        problems.append("最终文件的签名无效 / the final PDF's signatures do not verify: "
                        + "; ".join(p for s in final_report.signatures for p in s.problems))
    certificate_report = validate_pdf(files["certificate-of-completion.pdf"], trust,
                                      offline=True)
    if not certificate_report.valid:
        problems.append("完成证明的签章无效 / the certificate of completion's seal does not "
                        "verify")
    problems += _ledger_problems(files, manifest)
    return {"valid": not problems, "document": manifest.get("document"),
            "number": manifest.get("number"),
            "signatures": [s.as_dict() for s in final_report.signatures],
            "problems": problems}


def _manifest_signature_problems(files: dict[str, bytes], trust: TrustSettings) -> list[str]:
    async def check() -> bool:
        context = validation_context(trust)
        try:
            signed = cms.ContentInfo.load(files["manifest.p7s"])["content"]
            status = await async_validate_detached_cms(files["manifest.json"], signed,
                                                       signer_validation_context=context)
            return bool(status.intact and status.valid and status.trusted)
        finally:
            await context.aclose()

    try:
        ok = asyncio.run(check())
    except Exception as exc:  # noqa: BLE001 - a damaged signature is a verdict
        return [f"清单签名无法验证 / the manifest signature cannot be checked: {exc}"]
    return [] if ok else ["清单签名无效 / the manifest signature does not verify"]


def _ledger_problems(files: dict[str, bytes], manifest: dict) -> list[str]:
    problems = []
    try:
        package = json.loads(files["ledger.json"])
        events = package["ledger"]
    except (ValueError, KeyError) as exc:
        return [f"台账摘录损坏 / damaged ledger extract: {exc}"]
    try:
        for event in events:
            if ledger.event_hash(event) != event["hash"]:
                problems.append(f"台账事件 {event['seq']} 被改动 / ledger event {event['seq']} "
                                f"({event['kind']}) was altered")
        closed = [e for e in events if e["kind"] == EventKind.CLOSED]
        final_closed = bool(closed) and closed[-1]["revision_after"] == sha256(
            files["final.pdf"])
    except (KeyError, TypeError, AttributeError) as exc:  # a renamed or missing key
        return [f"台账摘录损坏 / damaged ledger extract: {type(exc).__name__}: {exc}"]
    if not final_closed:
        problems.append("最终文件与台账记录不符 / the final PDF is not the one the ledger closed")
    if package.get("certificate_of_completion") != sha256(
            files["certificate-of-completion.pdf"]):
        problems.append("完成证明与台账包不符 / the certificate of completion is not the "
                        "archived one")
    if manifest.get("document") != package.get("document"):
        problems.append("清单与台账属于不同文档 / manifest and ledger name different documents")
    if AUDIT_DB in files:
        problems += database_problems(files[AUDIT_DB], events)
    return problems
