"""The access boundary, attacked below the web layer (issue 11): each test performs one of
the findings' attacks against the use cases and sees it refused. Nothing here starts
LibreOffice: documents are made from a blank page with a signature field."""

from __future__ import annotations

import http.server
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.audit.sandbox import VerificationPool
from pipeline.config import Settings
from pipeline.documents.create import create_document, request_scope
from pipeline.documents.followup import follow_up
from pipeline.documents.notify import dispatch
from pipeline.documents.repository import document_status, revision_store
from pipeline.documents.sign import sign_document
from pipeline.documents.uploads import UploadRejected, upload_countersigned
from pipeline.errors import ValidationFailed
from pipeline.outbound.outbox import deliver_mail
from pipeline.outbound.webhooks import WebhookSecretMissing, deliver_webhooks
from pipeline.people import access, throttle
from pipeline.people.parties import add_party, register_certificate
from pipeline.people.setup import initialise
from pipeline.record import database, ledger, outbox
from signing.errors import WrongPassphrase
from tests.support.data import party_p12
from tests.support.documents import TEMPLATE, event_kinds, quick_document
from tests.support.external import external_sign
from tests.support.forms import example
from tests.support.hostile import blank_with_field, signed_blank, with_empty_updates
from tests.support.net import free_port
from tests.support.sql import sql


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("boundary") / "data",
                        smtp_port=free_port())
    initialise(settings)
    return settings


# --- finding 1: unauthenticated CPU exhaustion ---------------------------------------------


def test_a_thousand_empty_updates_are_refused_before_any_work(base):
    hostile = with_empty_updates(signed_blank(base), 1000)
    pool = VerificationPool(base, workers=1)
    try:
        verdict = pool.verify_now(hostile)
        assert pool._pool is None  # answered from the byte count: no worker was started
    finally:
        pool.close()
    assert not verdict["valid"] and "too many revisions (1002" in verdict["problems"][0]


def test_a_file_over_its_time_budget_is_stopped_and_the_pool_carries_on(base):
    # 600 updates are within a generous revision budget but cost seconds to verify.
    settings = replace(base, verify_timeout_s=0.5, verify_max_revisions=5000)
    pool = VerificationPool(settings, workers=1)
    try:
        stopped = pool.verify_now(with_empty_updates(signed_blank(base), 600))
        after = pool.verify_now(signed_blank(base))
    finally:
        pool.close()
    assert not stopped["valid"] and "time budget" in stopped["problems"][0]
    # The worker that was killed was replaced: the next file gets a real verdict.
    assert [s["field"] for s in after["signatures"]] == ["receiver"]


# --- finding 3: request_key IDOR ----------------------------------------------------------


def test_another_callers_request_key_neither_reveals_nor_claims_a_document(base):
    victim_key = "monthly-2024-05"
    victims = quick_document(base, creator="zhangwei",
                             request_key=request_scope("zhangwei", victim_key))
    # The attacker replays the victim's key: before, it got the victim's full status back.
    with pytest.raises(ValidationFailed):
        create_document(base, TEMPLATE, {}, [], None, actor="wangqiang",
                        request_key=victim_key)
    # The owner repeating its own call still gets its document.
    again = create_document(base, TEMPLATE, {}, [], None, actor="zhangwei",
                            request_key=victim_key)
    assert again.id == victims


def test_a_squatted_request_key_does_not_hand_over_the_squatters_document(base):
    squatter = quick_document(base, creator="wangqiang",
                              request_key=request_scope("wangqiang", "po-7781"))
    with pytest.raises(ValidationFailed):  # the victim's own create goes ahead
        create_document(base, TEMPLATE, {}, [], None, actor="zhangwei", request_key="po-7781")
    assert document_status(base, squatter).id == squatter


# --- finding 4: U+2028 in a one-line field --------------------------------------------------


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\r", "\x0b"])
def test_line_separators_in_a_one_line_field_are_a_field_error(base, char):
    form = example(TEMPLATE)
    form["requester"]["dept"] = f"市场{char}部"
    with database.connection(base.database) as conn:
        before = database.highest_event_seq(conn)
    with pytest.raises(ValidationFailed) as caught:
        create_document(base, TEMPLATE, form, [("requester", "zhangwei"),
                                               ("receiver", "lina")], None, actor="zhangwei")
    assert [p.path for p in caught.value.problems] == ["requester.dept"]
    with database.connection(base.database) as conn:
        assert database.highest_event_seq(conn) == before  # nothing recorded


def test_a_party_name_with_a_line_separator_is_refused(base):
    from pipeline.errors import BadInput

    with pytest.raises(BadInput, match="one line"):
        add_party(base, name="张\u2028伟", dept="市场部", email="zw2@example.com")


def test_a_stored_number_with_a_separator_still_mails_safely(base, smtp):
    inbox, port = smtp
    settings = replace(base, smtp_port=port)
    doc = quick_document(settings, number="2024-市场\u2028部-001")  # recorded before the fix
    assert dispatch(settings, doc) == ["receiver"]
    (subject,) = [s for s in inbox.subjects() if "2024-市场" in s]
    assert subject == "[会签] 请签署 2024-市场 部-001 / please sign"  # one line, no header added


def test_one_bad_document_never_stops_the_follow_up_pass(base, smtp, monkeypatch):
    inbox, port = smtp
    settings = replace(base, smtp_port=port)
    broken, fine = quick_document(settings), quick_document(settings)
    import pipeline.documents.followup as followup

    real = followup._follow_document

    def explode(settings, document_id, now):
        if document_id == broken:
            raise ValueError("Header values may not contain linefeed")  # as the U+2028 did
        return real(settings, document_id, now)

    monkeypatch.setattr(followup, "_follow_document", explode)
    due = datetime.fromisoformat(document_status(settings, fine).next[0].due)
    actions = follow_up(settings, due - timedelta(hours=1))
    kinds = {(a.document, a.kind) for a in actions}
    assert (broken, "failed") in kinds and (fine, "reminded") in kinds
    assert any("reminder" in subject for subject in inbox.subjects())


def test_a_relay_that_is_down_never_fails_a_committed_step(base, smtp):
    inbox, port = smtp
    down = replace(base, smtp_port=free_port())
    doc = quick_document(down)
    assert dispatch(down, doc) == ["receiver"]  # committed and queued, not raised
    assert "sent" in event_kinds(down, doc)
    with database.connection(down.database) as conn:
        (row,) = outbox.select_messages(conn, doc, pending_only=True)
    assert row["attempts"] == 1 and "could not send mail" in row["last_status"]
    # The relay comes back: the queued mail goes out once, on the next delivery pass.
    later = datetime.now(UTC) + timedelta(minutes=5)
    delivered = deliver_mail(replace(base, smtp_port=port), later)
    assert [(d.document_id, d.delivered) for d in delivered] == [(doc, True)]
    assert deliver_mail(replace(base, smtp_port=port), later) == []
    assert sum(1 for rcpts, _ in inbox.messages if rcpts == ("lina@example.com",)) == 1


# --- finding 5: sessions ----------------------------------------------------------------------


def test_a_session_is_not_the_token_and_ends_on_the_server(base):
    token = access.create_token(base, "party", "lina")
    session = access.sign_in_with_token(base, token, "10.0.0.5")
    assert session is not None and token not in (session.id, session.csrf)
    assert access.session_for(base, session.id).principal.party == "lina"
    access.close_session(base, session.id)  # signing out
    assert access.session_for(base, session.id) is None  # a copied cookie is dead too


def test_revoking_a_token_ends_it_and_its_sessions(base):
    token = access.create_token(base, "party", "lina", label="laptop")
    session = access.sign_in_with_token(base, token, "10.0.0.6")
    listed = next(c for c in access.list_credentials(base)
                  if c["kind"] == "token" and c["label"] == "laptop")
    assert access.revoke(base, listed["id"])["kind"] == "token"
    assert access.principal_for(base, token) is None
    assert access.session_for(base, session.id) is None


def test_sessions_expire_and_time_out_when_idle(base):
    session = access.open_session(base, access.Principal("party", "lina", "t"))
    sql(base.database, "UPDATE sessions SET last_seen_at = :at", {"at": (
        datetime.now(UTC) - timedelta(minutes=base.session_idle_minutes + 1)).isoformat()})
    assert access.session_for(base, session.id) is None
    short = replace(base, session_hours=-1)
    assert access.session_for(short, access.open_session(short, access.Principal(
        "party", "lina", "t")).id) is None


def test_a_link_sign_in_mints_no_token_and_works_once(base):
    tokens_before = len(sql(base.database, "SELECT * FROM api_tokens"))
    party, code = access.create_login_code(base, "LINA@example.com")
    assert party == "lina"
    # stored as a hash only
    assert not sql(base.database, "SELECT 1 FROM login_codes WHERE code_sha256 = :code",
                   {"code": code})
    assert access.sign_in_with_code(base, code, "10.0.0.7").principal.party == "lina"
    assert access.sign_in_with_code(base, code, "10.0.0.7") is None
    assert len(sql(base.database, "SELECT * FROM api_tokens")) == tokens_before


def test_expired_sign_in_codes_are_purged(base):
    sql(base.database, "INSERT INTO login_codes VALUES ('stale', 'lina', '2000-01-01')")
    access.create_login_code(base, "lina@example.com")
    assert not sql(base.database, "SELECT 1 FROM login_codes WHERE code_sha256 = 'stale'")


def test_guessed_tokens_are_throttled_per_client(base):
    for _ in range(throttle.FREE_FAILURES):
        assert access.sign_in_with_token(base, "guess", "10.9.9.9") is None
    with pytest.raises(throttle.TooManyAttempts):
        access.sign_in_with_token(base, "guess", "10.9.9.9")
    events = throttle.security_events(base)
    assert events[0]["kind"] == "sign-in-failed" and events[0]["client"] == "10.9.9.9"


# --- finding 6: key passphrase guessing -------------------------------------------------------


def test_passphrase_guesses_back_off_lock_out_and_are_recorded(base):
    doc = quick_document(base, party="liuyang")
    for _ in range(throttle.FREE_FAILURES):
        with pytest.raises(WrongPassphrase):
            sign_document(base, doc, "liuyang", "guess", client="10.1.1.1")
    # From now on each guess waits: the very next one is refused without trying the key,
    # whichever client it comes from (the party is throttled too).
    with pytest.raises(throttle.TooManyAttempts) as caught:
        sign_document(base, doc, "liuyang", "demo", client="10.1.1.2")
    assert caught.value.retry_after >= 1
    assert event_kinds(base, doc).count("passphrase-failed") == throttle.FREE_FAILURES
    shown = throttle.security_events(base, "liuyang")
    assert shown[0]["kind"] == "passphrase-failed" and shown[0]["detail"]["document"] == doc


def test_ten_failures_lock_the_party_out_for_minutes():
    assert throttle.wait_after(throttle.FREE_FAILURES - 1) == timedelta(0)
    waits = [throttle.wait_after(n) for n in range(throttle.FREE_FAILURES,
                                                   throttle.LOCKOUT_AFTER)]
    assert waits == sorted(waits) and waits[1] == 2 * waits[0]  # exponential
    assert throttle.wait_after(throttle.LOCKOUT_AFTER) == throttle.LOCKOUT


# --- finding 8: webhooks without a secret -----------------------------------------------------


def test_webhooks_without_a_secret_refuse_to_run(tmp_path):
    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = Settings(data_dir=tmp_path, webhook_urls=(
            f"http://127.0.0.1:{server.server_port}/hook",))
        with database.connection(settings.database) as conn:
            ledger.append(conn, [ledger.new_event("doc-1", "progress-entry", "t", {})])
        with pytest.raises(WebhookSecretMissing, match="COUNTERSIGN_WEBHOOK_SECRET"):
            deliver_webhooks(settings)
    finally:
        server.shutdown()
    assert received == []


# --- finding 10: the smaller ones -------------------------------------------------------------


def test_a_same_name_colleagues_certificate_is_not_accepted_for_an_upload(base):
    # A second 李娜 of 产品部, with a certificate of her own from the same trusted CA.
    add_party(base, name="李娜", dept="产品部", email="lina.2@example.com", party_id="lina2",
              issue_cert=True, passphrase="demo")
    doc = quick_document(base, party="lina")
    head = revision_store(base).get(document_status(base, doc).revision)
    forged = external_sign(base, head, "lina2", "receiver")
    with pytest.raises(UploadRejected, match="not a certificate registered for the party"):
        upload_countersigned(base, doc, "lina", forged)
    # Registered explicitly as lina's (her second certificate, say), it counts.
    register_certificate(base, "lina", _certificate_pem(base, "lina2"), "second card")
    accepted = upload_countersigned(base, doc, "lina", forged)
    assert accepted.status == "completed"


def _certificate_pem(settings: Settings, party: str) -> bytes:
    from asn1crypto import pem

    from signing.keys import read_pkcs12_certificate

    cert = read_pkcs12_certificate(party_p12(settings, party), "demo")
    return pem.armor("CERTIFICATE", cert.dump())


def test_an_upload_with_many_added_revisions_is_refused_unparsed(base):
    doc = quick_document(base, party="lina")
    head = revision_store(base).get(document_status(base, doc).revision)
    bloated = with_empty_updates(external_sign(base, head, "lina", "receiver"), 500)
    with pytest.raises(UploadRejected, match="adds 501 revisions"):
        upload_countersigned(base, doc, "lina", bloated)


def test_huge_blocking_limits_are_clamped(base):
    from pipeline.documents.repository import blocking_documents

    quick_document(base)
    assert blocking_documents(base, 10**30)  # was an OverflowError (HTTP 500)
    assert len(blocking_documents(base, 1)) == 1


def test_the_data_folder_is_private(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    initialise(settings)
    assert settings.data_dir.stat().st_mode & 0o777 == 0o700
    assert settings.database_path.stat().st_mode & 0o777 == 0o600
    loose = [p for p in settings.data_dir.rglob("*") if p.stat().st_mode & 0o077]
    assert loose == []


# --- finding 9: SSRF through the URLs in an uploaded document's certificate -----------------


class Listener(http.server.BaseHTTPRequestHandler):
    """Counts what reaches it: the stand-in for an internal service an attacker aims at."""

    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_POST = do_GET  # noqa: N815 - OCSP requests are POSTs

    def log_message(self, *args):
        pass


def _attacker_pdf(tmp_path, target: str) -> tuple[bytes, bytes]:
    """Return (a PDF signed by a certificate whose OCSP, CRL and issuer URLs point at
    ``target``, the PEM of the root it chains to)."""
    import io

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.now(UTC)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    root = (x509.CertificateBuilder().subject_name(name("Enterprise Root"))
            .issuer_name(name("Enterprise Root")).public_key(root_key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("李娜"))
            .issuer_name(root.subject).public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier(f"{target}/ocsp")),
                x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                       x509.UniformResourceIdentifier(f"{target}/ca.crt"))]),
                critical=False)
            .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(f"{target}/internal.crl")], None, None, None)]),
                critical=False)
            .sign(root_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_file, cert_file = tmp_path / "leaf.key", tmp_path / "leaf.crt"
    key_file.write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    cert_file.write_bytes(leaf.public_bytes(pem))
    signer = signers.SimpleSigner.load(str(key_file), str(cert_file))
    out = io.BytesIO()
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(blank_with_field("receiver"))),
                     signers.PdfSignatureMetadata(field_name="receiver"), signer=signer,
                     output=out)
    return out.getvalue(), root.public_bytes(pem)


def test_verifying_an_attackers_pdf_fetches_nothing_it_names(base, tmp_path):
    from pipeline.audit.verify import verify_bytes

    Listener.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{server.server_port}"
    try:
        pdf, root = _attacker_pdf(tmp_path, target)
        roots = tmp_path / "enterprise-roots.pem"
        roots.write_bytes(root)
        # Enterprise roots are configured (before, that alone switched fetching on).
        enterprise = replace(base, trust_roots_file=roots)
        verdict = verify_bytes(enterprise, pdf)
        assert Listener.hits == [] and not verdict["valid"]
        # The operator's allow-list is the only way to fetch — and it is obeyed exactly.
        elsewhere = replace(enterprise, fetch_allow=("http://ocsp.corp.example/",))
        verify_bytes(elsewhere, pdf)
        assert Listener.hits == []
        allowed = replace(enterprise, fetch_allow=(f"{target}/",))
        verify_bytes(allowed, pdf)
        assert Listener.hits  # the same file, with its URLs allowed, does reach them
    finally:
        server.shutdown()
