"""A real test PKI served on loopback by certomancer: root, issuing CA, OCSP responder, CRLs
and a timestamp authority, plus an impostor PKI whose names copy the real one.

Keys are generated fresh for each test session; nothing here is a stand-in: pyHanko talks to
the OCSP responder, CRL repository and TSA over HTTP exactly as it would in production.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from certomancer.integrations.animator import Animator, AnimatorArchStore
from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig, KeyLabel
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

from tests.support.net import free_port

KEY_PASSWORD = b"test-pki-secret"
ARCH = "countersign-test"
IMPOSTOR = "impostor"
# label → (common name, department), all issued by the issuing CA of their architecture.
PARTIES = {
    "alice": ("张伟", "市场部"),
    "bob": ("李娜", "产品部"),
    "carol": ("王强", "研发部"),
    "dave": ("赵敏", "市场部"),   # revoked
    "erin": ("陈静", "法务部"),   # expired
}


def _write_key(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD)))


def _ca_cert(issuer: str, *, path_len: int | None, crl_repo: str | None) -> dict:
    value = {"ca": True} if path_len is None else {"ca": True, "path-len-constraint": path_len}
    extensions = [
        {"id": "basic_constraints", "critical": True, "value": value},
        {"id": "key_usage", "critical": True,
         "smart-value": {"schema": "key-usage",
                         "params": ["digital_signature", "key_cert_sign", "crl_sign"]}},
    ]
    if crl_repo:
        extensions.append({"id": "crl_distribution_points",
                           "smart-value": {"schema": "crl-dist-url",
                                           "params": {"crl-repo-names": [crl_repo]}}})
    return {"issuer": issuer,
            "validity": {"valid-from": "2000-01-01T00:00:00+0000",
                         "valid-to": "2200-01-01T00:00:00+0000"},
            "extensions": extensions}


def _party_cert(valid_to: str = "2100-01-01T00:00:00+0000", revoked: bool = False) -> dict:
    cert = {
        "issuer": "interm",
        "validity": {"valid-from": "2020-01-01T00:00:00+0000", "valid-to": valid_to},
        "extensions": [
            {"id": "key_usage", "critical": True,
             "smart-value": {"schema": "key-usage",
                             "params": ["digital_signature", "non_repudiation"]}},
            {"id": "crl_distribution_points",
             "smart-value": {"schema": "crl-dist-url",
                             "params": {"crl-repo-names": ["interm"]}}},
            {"id": "authority_information_access",
             "smart-value": {"schema": "aia-urls",
                             "params": {"ocsp-responder-names": ["interm"]}}},
        ],
    }
    if revoked:
        cert["revocation"] = {"revoked-since": "2021-06-01T00:00:00+0000",
                              "reason": "key_compromise"}
    return cert


def _architecture(keyset: str, org: str) -> dict:
    entities = {
        "root": {"common-name": f"{org} Root CA"},
        "interm": {"common-name": f"{org} Issuing CA"},
        "interm-ocsp": {"common-name": "OCSP responder"},
        "tsa": {"common-name": "Time Stamping Authority"},
    }
    for label, (name, dept) in PARTIES.items():
        entities[label] = {"common-name": name, "organizational-unit-name": dept}
    certs = {
        "root": {**_ca_cert("root", path_len=None, crl_repo=None), "subject": "root",
                 "subject-key": "root", "authority-key": "root"},
        "interm": _ca_cert("root", path_len=0, crl_repo="root"),
        "interm-ocsp": {
            "issuer": "interm",
            "validity": {"valid-from": "2000-01-01T00:00:00+0000",
                         "valid-to": "2200-01-01T00:00:00+0000"},
            "extensions": [
                {"id": "key_usage", "critical": True,
                 "smart-value": {"schema": "key-usage", "params": ["digital_signature"]}},
                {"id": "extended_key_usage", "critical": True, "value": ["ocsp_signing"]},
                {"id": "ocsp_no_check"},
            ],
        },
        "tsa": {
            "issuer": "root",
            "validity": {"valid-from": "2000-01-01T00:00:00+0000",
                         "valid-to": "2200-01-01T00:00:00+0000"},
            "extensions": [
                {"id": "key_usage", "critical": True,
                 "smart-value": {"schema": "key-usage", "params": ["digital_signature"]}},
                {"id": "extended_key_usage", "critical": True, "value": ["time_stamping"]},
                {"id": "crl_distribution_points",
                 "smart-value": {"schema": "crl-dist-url",
                                 "params": {"crl-repo-names": ["root"]}}},
            ],
        },
        "alice": _party_cert(),
        "bob": _party_cert(),
        "carol": _party_cert(),
        "dave": _party_cert(revoked=True),
        "erin": _party_cert(valid_to="2021-01-01T00:00:00+0000"),
    }
    return {
        "keyset": keyset,
        "entity-defaults": {"country-name": "CN", "organization-name": org},
        "entities": entities,
        "certs": certs,
        "services": {
            "ocsp": {"interm": {"for-issuer": "interm", "responder-cert": "interm-ocsp",
                                "signing-key": "interm-ocsp"}},
            "crl-repo": {
                "root": {"for-issuer": "root", "signing-key": "root",
                         "simulated-update-schedule": "P90D"},
                "interm": {"for-issuer": "interm", "signing-key": "interm",
                           "simulated-update-schedule": "P30D"},
            },
            "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}},
        },
    }


@dataclass
class TestPKI:
    """The running test PKI: certificates, keys and service URLs."""

    config: CertomancerConfig
    base_url: str
    server: object

    def arch(self, name: str = ARCH):
        return self.config.get_pki_arch(ArchLabel(name))

    def cert(self, label: str, arch: str = ARCH) -> asn1_x509.Certificate:
        return self.arch(arch).get_cert(CertLabel(label))

    def key(self, label: str, arch: str = ARCH) -> asn1_keys.PrivateKeyInfo:
        return self.arch(arch).key_set.get_private_key(KeyLabel(label))

    @property
    def root(self) -> asn1_x509.Certificate:
        return self.cert("root")

    @property
    def intermediate(self) -> asn1_x509.Certificate:
        return self.cert("interm")

    @property
    def tsa_url(self) -> str:
        return f"{self.base_url}/{ARCH}/tsa/tsa"

    def stop(self) -> None:
        self.server.shutdown()


def start_test_pki(folder: Path) -> TestPKI:
    """Generate keys into ``folder``, configure both architectures and serve them."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    labels = ["root", "interm", "interm-ocsp", "tsa", *PARTIES]
    keysets = {}
    for keyset in (ARCH, IMPOSTOR):
        (folder / keyset).mkdir(parents=True, exist_ok=True)
        for label in labels:
            _write_key(folder / keyset / f"{label}.key.pem")
        keysets[keyset] = {
            "path-prefix": keyset,
            "keys": {label: {"path": f"{label}.key.pem", "password": KEY_PASSWORD.decode()}
                     for label in labels},
        }
    config = CertomancerConfig(
        {
            "external-url-prefix": base_url,
            "keysets": keysets,
            "pki-architectures": {
                ARCH: _architecture(ARCH, "Countersign Test"),
                # Same organisation and party names, different keys: a look-alike PKI.
                IMPOSTOR: _architecture(IMPOSTOR, "Countersign Test"),
            },
        },
        key_search_dir=str(folder),
    )
    app = Animator(AnimatorArchStore(config.pki_archs), with_web_ui=False)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return TestPKI(config=config, base_url=base_url, server=server)
