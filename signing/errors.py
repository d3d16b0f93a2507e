"""Errors of the cryptographic layer, each naming what is wrong in Chinese and English.

The library has its own root, :class:`SigningError`: an application maps it to its own
errors at its boundary. ``caller_fault`` says whether the input was unusable (a wrong
passphrase, not a PDF) rather than the operation failing on good input.
"""

from __future__ import annotations


class SigningError(Exception):
    """Base class of every error the signing library raises on purpose."""

    code = "signing_error"
    caller_fault = False

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.zh = zh
        self.en = en

    def __reduce__(self):
        # Errors cross process boundaries (signing runs in worker processes).
        return (self.__class__, (self.zh, self.en))


class SigningFailed(SigningError):
    """A signature could not be made."""

    code = "signing_failed"


class TimestampUnavailable(SigningFailed):
    """The configured timestamp authority did not answer: no signature is made without it."""

    code = "timestamp_unavailable"


class CertificateRefused(SigningFailed):
    """The signer's certificate is revoked, expired, untrusted or not fit for signing."""

    code = "certificate_refused"


class WrongPassphrase(SigningError):
    code = "wrong_passphrase"
    caller_fault = True


class KeyStoreError(SigningError):
    """A PKCS#12 file or PKCS#11 token could not be used."""

    code = "key_store"
    caller_fault = True


class SignatureFieldError(SigningFailed):
    """The signature field to sign is missing, already signed, or its place is not found."""

    code = "signature_field"


class NotAPdf(SigningError):
    code = "not_a_pdf"
    caller_fault = True
