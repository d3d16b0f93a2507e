"""Long-term validation at closure (PAdES B-LTA).

Revocation data (OCSP responses, CRLs) and certificates for every signature and its
timestamp go into the document security store, then a document timestamp seals the lot, so
that the closed document verifies offline years later.
"""

from __future__ import annotations

import asyncio
import io

import aiohttp
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers import PdfTimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation.dss import async_add_validation_info

from signing.errors import SigningFailed, TimestampUnavailable
from signing.revisions import Permitted
from signing.timestamps import TimestampAuthority
from signing.trust import TrustSettings, validation_context

ARCHIVE_TIMESTAMP_FIELD = "archive-timestamp"
# All that adding long-term validation may write: revision data and the archive timestamp.
LONG_TERM_CHANGES = Permitted(timestamp_fields=frozenset({ARCHIVE_TIMESTAMP_FIELD}),
                              revision_data=True)


async def async_add_long_term_validation(pdf: bytes, trust: TrustSettings,
                                         tsa: TimestampAuthority) -> bytes:
    """Return ``pdf`` with validation data for every signature and a document timestamp."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    count = len(reader.embedded_regular_signatures)
    for index in range(count):
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signature = sorted(reader.embedded_regular_signatures,
                           key=lambda s: s.signed_revision)[index]
        context = validation_context(trust)
        try:
            out = await async_add_validation_info(signature, context, output=io.BytesIO())
        except Exception as exc:  # noqa: BLE001 - named below, never half-written
            raise SigningFailed(f"无法收集签名 {signature.field_name} 的吊销信息：{exc}",
                                f"cannot gather revocation data for signature "
                                f"{signature.field_name}: {type(exc).__name__}: {exc}") from None
        finally:
            await context.aclose()
        pdf = out.getvalue()
    context = validation_context(trust)
    out = io.BytesIO()
    try:
        async with aiohttp.ClientSession() as session:
            stamper = PdfTimeStamper(tsa.timestamper(session),
                                     field_name=ARCHIVE_TIMESTAMP_FIELD)
            await stamper.async_timestamp_pdf(
                IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False), "sha256",
                validation_context=context, output=out)
    except (TimeoutError, TimestampRequestError, aiohttp.ClientError, ConnectionError) as exc:
        raise TimestampUnavailable(
            "时间戳服务不可用，无法加盖文档时间戳",
            f"the timestamp authority is unavailable for the document timestamp: {exc}"
        ) from None
    finally:
        await context.aclose()
    return out.getvalue()


def add_long_term_validation(pdf: bytes, trust: TrustSettings, tsa: TimestampAuthority) -> bytes:
    """Synchronous :func:`async_add_long_term_validation`."""
    return asyncio.run(async_add_long_term_validation(pdf, trust, tsa))
