"""Offline verification of an evidence bundle (``lre-verify``).

Standalone on purpose: it imports nothing from ``lre.server`` or
``lre.signer``, so what it checks is the bundle against the published
formats (RFC 5652/3161 CMS, ETSI CAdES and PAdES, RFC 9162), not our code
against itself. No database, no network: the trust anchors come from the
person verifying (``--trust``), never from the bundle.
"""

from lre.runtime import asn1crypto_fix

asn1crypto_fix.apply()

from lre.verify.bundle import verify_bundle  # noqa: E402
from lre.verify.report import Check, Report  # noqa: E402

__all__ = ["Check", "Report", "verify_bundle"]
