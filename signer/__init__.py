"""The signer: the only process that opens the PKCS#11 module or knows the PIN.

It serves RFC 3161 timestamps, CAdES seals and content-key wrapping over gRPC,
and the RFC 3161 HTTP transport for standard TSA clients.
"""

from signer import _asn1  # noqa: E402,F401  -- fixes asn1crypto before any ASN.1 is built
