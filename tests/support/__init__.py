"""The tests' library: every helper the tests share, by concern. Test modules
and conftests import from here, never from one another (conftests only
define fixtures); tests/unit/test_test_layout.py holds the rule.

- processes: the programs' directory, free ports, a process run for a block,
  waiting for a condition
- rpc: gRPC channels (plaintext or mutual TLS) and the health check
- signer, server: the real processes, their handles and commands (and
  libfaketime, to move the server's wall clock)
- clients: the server's public API as its callers use it (end to end)
- parties, proofing: factories of parties through the identity services, a
  local CA and eID broker
- services, world: the service tests' clock and key; the services wired over
  a database and the real signer
- mail, webhooks: the SMTP server and webhook receiver the server talks to
- databases, journal, metrics: what the database, the security journal and
  Prometheus hold
- pki, asn1, rfc9162: independent checks of what the signer and the log produce
- protofuzz, wire: malformed gRPC requests, raw HTTP/1.1
- contract: what the deployment files may name
"""
