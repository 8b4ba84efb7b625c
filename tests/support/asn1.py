"""asn1crypto for the tests: the product's definite-length fix, applied on
import, structures asn1crypto lacks, and RFC 3161 requests."""

from __future__ import annotations

from asn1crypto import algos, cms, core, tsp

from lre.runtime import asn1crypto_fix

asn1crypto_fix.apply()


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp. asn1crypto's makes the token mandatory; RFC 3161
    has it OPTIONAL, and it is absent from every rejection."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def timestamp_request(digest: bytes, algorithm: str = "sha256", **fields: object) -> bytes:
    """A DER RFC 3161 TimeStampReq over ``digest``, certificate requested;
    ``fields`` add to or replace its fields (``req_policy="1.2.3.4"``)."""
    return bytes(
        tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}),
                    "hashed_message": digest,
                },
                "cert_req": True,
                **fields,
            }
        ).dump()
    )
