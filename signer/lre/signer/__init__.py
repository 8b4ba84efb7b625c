"""The signer: the only process that opens the PKCS#11 module or knows the PIN.

It serves RFC 3161 timestamps, CAdES seals and content-key wrapping over gRPC,
and the RFC 3161 HTTP transport for standard TSA clients.
"""
