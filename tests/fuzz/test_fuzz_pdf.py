"""Fuzzing the upload and verify paths with hypothesis: mutations of a real signed document
and plain junk. Whatever comes in, the answer is a verdict or a named refusal — never an
unhandled exception. Run with ``make fuzz`` (FUZZ_EXAMPLES inputs, default 10,000)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.audit.verify import verify_bytes
from pipeline.config import Settings
from pipeline.documents.create import create_document
from pipeline.documents.repository import document_events, download_revision, load_state
from pipeline.documents.sign import pending_member, sign_document
from pipeline.documents.uploads import check_upload as upload_rules
from pipeline.documents.uploads import upload_countersigned
from pipeline.errors import CountersignError
from pipeline.people.parties import get_party
from pipeline.people.setup import initialise
from tests.support.external import external_sign
from tests.support.forms import example

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
# Not part of make test; slow too (LibreOffice), so that `-m "not slow"` leaves it out.
pytestmark = [pytest.mark.fuzz, pytest.mark.slow]


@pytest.fixture(scope="module")
def target(tmp_path_factory, pool):
    data = Settings(data_dir=tmp_path_factory.mktemp("fuzz") / "data")
    initialise(data)
    doc = create_document(data, "requirement_confirmation", example("requirement_confirmation"),
                          [("requester", "zhangwei"), ("receiver", "lina")], pool).id
    sign_document(data, doc, "zhangwei", "demo")
    seed = external_sign(data, download_revision(data, doc), "lina", "receiver")
    return data, doc, seed


@st.composite
def mutated(draw, seed: bytes):
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate",
                                          "junk"]))
        where = draw(st.integers(0, max(0, len(data) - 1)))
        if operation == "flip" and data:
            data[where] ^= draw(st.integers(1, 255))
        elif operation == "truncate":
            del data[where:]
        elif operation == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=64))
        elif operation == "duplicate":
            length = draw(st.integers(1, 4096))
            data[where:where] = data[where:where + length]
        elif operation == "junk":
            return draw(st.binary(max_size=2048))
    return bytes(data)


def test_fuzz_upload_and_verify(target):
    data_settings, doc, seed = target
    # The upload rules are checked against a document that stays waiting for lina: an
    # accepted candidate (the seed itself, say) must not end the upload fuzzing early.
    state = load_state(data_settings, doc)
    member = pending_member(state, "lina")
    party = get_party(data_settings, "lina")
    earlier = {e["revision_after"] for e in document_events(data_settings, doc)
               if e["revision_after"]}
    calls: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(mutated(seed), st.binary(max_size=4096)))
    def check(candidate: bytes) -> None:
        calls.append(len(candidate))
        verdict = verify_bytes(data_settings, candidate)
        reports = [*verdict["signatures"], *verdict["document_timestamps"]]
        if verdict["valid"]:  # only bytes every signature still covers, intact
            assert reports and all(r["valid"] and r["intact"] for r in reports)
        else:  # an invalid verdict names its reason
            assert verdict["problems"] or any(r["problems"] for r in reports)
        upload = upload_rules(data_settings, state, party, member, candidate, earlier)
        if upload.problem is None:  # accepted: it can only be lina's own signature
            assert upload.certificate_sha256 == party.certificate_sha256
        else:
            zh, en = upload.problem
            assert zh and en

    check()
    print(f"{len(calls)} inputs, {len(set(calls))} distinct sizes, largest {max(calls)} bytes")
    assert len(calls) >= EXAMPLES
    # And once through the whole use case, ledger and all.
    with pytest.raises(CountersignError):
        upload_countersigned(data_settings, doc, "lina", seed[:-100])
