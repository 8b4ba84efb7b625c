"""asn1crypto support for the tests: the definite-length fix, applied on import,
and structures asn1crypto lacks."""

from __future__ import annotations

from asn1crypto import cms, core, tsp

from lre.runtime.asn1crypto_fix import apply as apply

apply()


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp. asn1crypto's makes the token mandatory; RFC 3161
    has it OPTIONAL, and it is absent from every rejection."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]
