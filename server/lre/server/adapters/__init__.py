"""Adapters to what lies outside the process: the signer (seals, timestamps,
content keys), mail transports, and AES-GCM encryption of small secrets at rest.
Only the composition root (lre.server.bootstrap) picks the concrete ones."""
