"""Errors of the cryptographic layer, each naming what is wrong in Chinese and English."""

from __future__ import annotations

from pipeline.errors import BadInput, OperationFailed


class SigningFailed(OperationFailed):
    """A signature could not be made."""

    code = "signing_failed"


class TimestampUnavailable(SigningFailed):
    """The configured timestamp authority did not answer: no signature is made without it."""

    code = "timestamp_unavailable"


class CertificateRefused(SigningFailed):
    """The signer's certificate is revoked, expired, untrusted or not fit for signing."""

    code = "certificate_refused"


class WrongPassphrase(BadInput):
    code = "wrong_passphrase"


class KeyStoreError(BadInput):
    """A PKCS#12 file or PKCS#11 token could not be used."""

    code = "key_store"


class SignatureFieldError(SigningFailed):
    """The signature field to sign is missing, already signed, or its place is not found."""

    code = "signature_field"


class NotAPdf(BadInput):
    code = "not_a_pdf"
