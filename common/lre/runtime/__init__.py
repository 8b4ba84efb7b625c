"""What the server and the signer share: settings, JSON lines on stderr, gRPC serving
(health, reflection, metrics, authorization hook), process pools, TLS, error details.
It imports neither lre.server nor lre.signer."""
