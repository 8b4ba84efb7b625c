"""The signer's one error hierarchy. Messages never carry a PIN or key material."""

from __future__ import annotations


class SignerError(Exception):
    """Base of every error the signer raises on purpose."""


class TokenUnavailable(SignerError):
    """The token cannot be used now (module missing, token absent, wrong PIN)."""


class KeyNotFound(SignerError):
    """No key or certificate with that label on the token."""


class ClockNotTrusted(SignerError):
    """The TSA will not issue time it cannot vouch for."""


class NoTimestampSource(ClockNotTrusted):
    """No configured timestamp source gave a token; the message names each one's reason."""


class BadTimestampRequest(SignerError):
    """A TimeStampReq the TSA refuses; ``fail_info`` is the RFC 3161 PKIFailureInfo bit."""

    def __init__(self, fail_info: str, message: str) -> None:
        super().__init__(message)
        self.fail_info = fail_info


class UnwrapFailed(SignerError):
    """A wrapped key did not authenticate under this context."""


class BadPdf(SignerError):
    """Bytes given to sign as a PDF that are not one we can sign."""


class ValidationDataUnavailable(SignerError):
    """The seal or TSA chain cannot be validated now (CRLs missing, stale or saying revoked):
    a B-LT signature would carry no proof that they were valid when signing."""


class WrapKeyUnknown(SignerError):
    """A wrapped key names a wrap key the settings do not list (a configuration problem)."""


class StaleValidationData(SignerError):
    """A PDF to sign carries validation data (certificates, CRLs) that is no
    longer the current one: its caller fetches the current data and tries again."""
