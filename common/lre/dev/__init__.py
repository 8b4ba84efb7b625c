"""Development tools: the `make run` launcher (`stack`) and its local TLS CA (`tls`).
Never used by the server or the signer in production."""
