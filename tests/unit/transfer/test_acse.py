"""The sender's association PDUs against pynetdicom's codec, both ways (PS3.8 9.3)."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.uid import UID
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import PresentationContext

from xnat_tui.transfer.acse import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    MAX_CONTEXTS,
    associate_rq,
    parse_associate_ac,
    parse_associate_rj,
)

MR = "1.2.840.10008.5.1.4.1.1.4"
CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT, IMPLICIT, JPEG_LS = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.80"


def test_request_reads_back_in_pynetdicom() -> None:
    contexts = [(MR, EXPLICIT), (CT, IMPLICIT), (MR, JPEG_LS)]
    rq = A_ASSOCIATE_RQ()
    rq.decode(associate_rq("XNAT", "SCANNER_7", contexts, 65536))
    prim = rq.to_primitive()
    assert prim.called_ae_title == "XNAT"
    assert prim.calling_ae_title == "SCANNER_7"
    assert prim.application_context_name == "1.2.840.10008.3.1.1.1"
    offered = [
        (cx.context_id, str(cx.abstract_syntax), [str(t) for t in cx.transfer_syntax])
        for cx in prim.presentation_context_definition_list
    ]
    assert offered == [(1, MR, [EXPLICIT]), (3, CT, [IMPLICIT]), (5, MR, [JPEG_LS])]
    user: dict[str, Any] = {type(item).__name__: item for item in prim.user_information}
    assert user["MaximumLengthNotification"].maximum_length_received == 65536
    assert user["ImplementationClassUIDNotification"].implementation_class_uid == (
        IMPLEMENTATION_CLASS_UID
    )
    assert UID(IMPLEMENTATION_CLASS_UID).is_valid
    name = user["ImplementationVersionNameNotification"].implementation_version_name
    assert name == IMPLEMENTATION_VERSION_NAME
    assert len(IMPLEMENTATION_VERSION_NAME) <= 16


def _accept(results: list[tuple[int, int, str]], max_pdu: int) -> bytes:
    prim = A_ASSOCIATE()
    prim.application_context_name = UID("1.2.840.10008.3.1.1.1")
    prim.calling_ae_title = "SCANNER"
    prim.called_ae_title = "XNAT"
    prim.result = 0
    answered = []
    for context_id, result, syntax in results:
        cx = PresentationContext()
        cx.context_id = context_id
        cx.result = result
        cx.transfer_syntax = [UID(syntax)]
        answered.append(cx)
    prim.presentation_context_definition_results_list = answered
    length = MaximumLengthNotification()
    length.maximum_length_received = max_pdu
    prim.user_information = [length]
    ac = A_ASSOCIATE_AC()
    ac.from_primitive(prim)
    return bytes(ac.encode())


def test_acceptance_from_pynetdicom_is_read() -> None:
    pdu = _accept([(1, 0, EXPLICIT), (3, 3, IMPLICIT), (5, 4, JPEG_LS)], 16384)
    answer = parse_associate_ac(pdu)
    assert answer.results == {1: 0, 3: 3, 5: 4}
    assert answer.syntaxes == {1: EXPLICIT}  # only accepted contexts carry a syntax
    assert answer.max_pdu == 16384


def test_rejection_from_pynetdicom_is_read() -> None:
    rj = A_ASSOCIATE_RJ()
    prim = A_ASSOCIATE()
    prim.result, prim.result_source, prim.diagnostic = 1, 1, 7
    rj.from_primitive(prim)
    got = parse_associate_rj(bytes(rj.encode()))
    assert (got.result, got.source, got.reason) == (1, 1, 7)


def test_malformed_answers_are_errors_not_crashes() -> None:
    pdu = _accept([(1, 0, EXPLICIT)], 16384)
    with pytest.raises(ValueError, match="runs past the end"):
        parse_associate_ac(pdu[:-3])
    with pytest.raises(ValueError, match="not an A-ASSOCIATE-AC"):
        parse_associate_ac(pdu[:20])
    with pytest.raises(ValueError, match="not an A-ASSOCIATE-RJ"):
        parse_associate_rj(b"\x03\x00\x00\x00")


def test_request_limits() -> None:
    with pytest.raises(ValueError, match="AE title"):
        associate_rq("A_TITLE_LONGER_THAN_16", "ME", [(MR, EXPLICIT)], 0)
    with pytest.raises(ValueError, match="presentation contexts"):
        associate_rq("XNAT", "ME", [(MR, EXPLICIT)] * (MAX_CONTEXTS + 1), 0)
