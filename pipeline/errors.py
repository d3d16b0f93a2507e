"""Exceptions of the pipeline. Each names what is wrong in Chinese and English.

The CLI prints ``str(error)`` as one line and exits 2 for a ``BadInput`` (the caller's fault)
and 1 for an ``OperationFailed``; the API maps them to 4xx JSON bodies the same way.
"""

from __future__ import annotations

from signing.errors import SigningError


class CountersignError(Exception):
    """Base class: every error the pipeline raises on purpose."""

    code = "error"

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.zh = zh
        self.en = en

    def __reduce__(self):
        # Errors cross process boundaries (the API signs in worker processes).
        return (self.__class__, (self.zh, self.en))


class BadInput(CountersignError):
    """The caller gave something unusable (exit code 2, HTTP 4xx)."""

    code = "bad_input"


class OperationFailed(CountersignError):
    """The operation was attempted and did not succeed (exit code 1)."""

    code = "failed"


class UnknownTemplate(BadInput):
    code = "unknown_template"


class ManifestError(BadInput):
    code = "bad_manifest"


class ValidationFailed(BadInput):
    """Form data broke one or more rules; ``problems`` lists every one of them."""

    code = "validation_failed"

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__(
            f"表单数据有 {len(problems)} 处错误", f"form data has {len(problems)} problem(s)"
        )

    def __reduce__(self):
        return (self.__class__, (self.problems,))


class FieldProblem:
    """One validation problem: where (a dotted path such as ``details[2]``) and what."""

    __slots__ = ("path", "zh", "en")

    def __init__(self, path: str, zh: str, en: str) -> None:
        self.path, self.zh, self.en = path, zh, en

    def __str__(self) -> str:
        return f"{self.path}: {self.zh} / {self.en}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.path, "zh": self.zh, "en": self.en}


class RenderError(OperationFailed):
    code = "render_failed"


class ConversionError(OperationFailed):
    """LibreOffice could not turn the document into a PDF."""

    code = "conversion_failed"


class NotADocx(ConversionError, BadInput):
    """The bytes given for conversion are not a readable .docx."""

    code = "not_a_docx"


class ConversionTimeout(ConversionError):
    code = "conversion_timeout"


class SigningRefused(BadInput):
    """The signing library refused the caller's input (wrong passphrase, not a PDF…)."""

    code = "signing_refused"


class SigningProblem(OperationFailed):
    """The signing library could not complete on good input (TSA down, certificate refused)."""

    code = "signing_failed"


#: What the boundaries (CLI, API, pages, background passes) catch: the application's own
#: errors and the signing library's, which has a root of its own.
KNOWN_ERRORS = (CountersignError, SigningError)


def as_pipeline_error(error: CountersignError | SigningError) -> CountersignError:
    """Return ``error`` as a pipeline error, keeping a signing error's code and message."""
    if isinstance(error, CountersignError):
        return error
    translated = (SigningRefused if error.caller_fault else SigningProblem)(error.zh, error.en)
    translated.code = error.code
    return translated


class UnknownDocument(BadInput):
    code = "unknown_document"

    @classmethod
    def named(cls, document_id: str) -> UnknownDocument:
        """Return the error for ``document_id``: the one answer for a document that does
        not exist and for one the caller may not see."""
        return cls(f"未知文档 {document_id!r}", f"unknown document {document_id!r}")


class UnknownParty(BadInput):
    code = "unknown_party"

    @classmethod
    def named(cls, party_id: str) -> UnknownParty:
        return cls(f"未知签署方 {party_id!r}", f"unknown party {party_id!r}")


class Forbidden(BadInput):
    """The caller's role may not take this action (HTTP 403)."""

    code = "forbidden"


class NotYourTurn(BadInput):
    code = "not_your_turn"


class UploadRejected(BadInput):
    code = "upload_rejected"


class NotPermitted(Forbidden):
    """The caller's role may take the action, but not on this document: it is not the
    document's creator, not a party to it, not the one whose step it is (HTTP 403)."""

    code = "not_permitted"


class Conflict(OperationFailed):
    """Another signature landed on the document first."""

    code = "conflict"


class ClosureRefused(OperationFailed):
    code = "closure_refused"





class ResolutionRequired(NotYourTurn):
    """A signature waits for a field its role must fill first (an issue's 结果确认)."""

    code = "resolution_required"
