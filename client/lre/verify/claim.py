"""Whom a bundle claims to be from, checked first.

The manifest names the provider the bundle claims (``provider``: its name
and the SHA-256 of the seal certificates that signed the bundle, the first
the one the sealed evidence names as its issuer; a tree head or a PDF signed
after a renewal of the seal certificate adds the newer one), so that a
reader sees at once who is claimed and whether every signer is that
claimant: the evidence seal, the tree head seal and the PDF proof's
signature. The manifest itself is not sealed, so nothing in it is taken on
its word: the name and first certificate must be the sealed evidence's
issuer, every other certificate one that signed something in the bundle,
its ``evidenceId`` the sealed evidence's, and any other field is refused.
With the provider's declared certificates every claimed certificate must be
one of them (a retired one included: it sealed what it sealed while
current).
"""

from __future__ import annotations

import base64
import hashlib

from asn1crypto import x509 as asn1_x509

from lre.runtime import bundle_layout as layout
from lre.verify.checks import Bundle, check
from lre.verify.cms import SealProblem
from lre.verify.provider import Provider, load_json
from lre.verify.report import Report

NAME = "provider claimed"
MANIFEST_FIELDS = {"format", "evidenceId", "members", "provider"}


def check_claim(
    report: Report,
    bundle: Bundle,
    signers: dict[str, asn1_x509.Certificate | None],
    provider: Provider | None,
) -> None:
    """The claim check, placed right after the bundle's and the manifest's
    own checks in ``report``: the first thing a reader sees."""
    found = Report()
    with check(found, NAME) as ok:
        ok(_claim(bundle, signers, provider))
    at = next(
        (i + 1 for i, c in enumerate(report.checks) if c.name == "manifest"), len(report.checks)
    )
    report.checks[at:at] = found.checks


def _claim(
    bundle: Bundle,
    signers: dict[str, asn1_x509.Certificate | None],
    provider: Provider | None,
) -> str:
    manifest = load_json(bundle[layout.MANIFEST], "manifest.json")
    evidence = load_json(bundle[layout.EVIDENCE], "evidence.json")
    if not isinstance(manifest, dict) or not isinstance(evidence, dict):
        raise SealProblem("manifest.json or evidence.json is not an object")
    extra = sorted(set(manifest) - MANIFEST_FIELDS)
    if extra:
        raise SealProblem(f"manifest.json has fields no seal covers: {', '.join(extra)}")
    if manifest.get("evidenceId") != evidence.get("evidenceId"):
        raise SealProblem("manifest.json names another evidence than the sealed one")
    claim = manifest.get("provider")
    issuer = evidence.get("issuer")
    certificate = issuer.get("certificate") if isinstance(issuer, dict) else None
    if not isinstance(issuer, dict) or not isinstance(certificate, dict):
        raise SealProblem("the sealed evidence names no issuer")
    try:
        sealed_digest = base64.b64decode(str(certificate.get("digestValue")), validate=True).hex()
    except ValueError:
        raise SealProblem("the sealed evidence's issuer certificate digest is not base64") from None
    signed = {what: _digest(what, signer) for what, signer in signers.items()}
    if claim is None:
        # Bundles made before the manifest carried a claim: the claimant is
        # the sealed issuer, and whoever else signed is checked below.
        claimed_name, claimed = str(issuer.get("name")), [sealed_digest, *signed.values()]
        said = f"no claim in the manifest (an older bundle); the sealed issuer is {claimed_name}"
    else:
        if not isinstance(claim, dict) or set(claim) != {"name", "sealCertificates"}:
            raise SealProblem("manifest.json's provider is not a name and certificate digests")
        claimed_name, claimed = str(claim["name"]), claim["sealCertificates"]
        if not isinstance(claimed, list) or not claimed or claimed_name != issuer.get("name"):
            raise SealProblem(
                f"the manifest claims {claimed_name}, the sealed evidence names "
                f"{issuer.get('name')}: the claim is covered by no seal"
            )
        if claimed[0] != sealed_digest:
            raise SealProblem(
                "the manifest claims another seal certificate than the sealed evidence's issuer"
            )
        unused = set(claimed) - set(signed.values())
        if unused:
            raise SealProblem("the manifest claims seal certificates that signed nothing here")
        said = f"claims to be from {claimed_name}"
    for what, digest in signed.items():
        if digest not in claimed:
            signer = signers[what]
            assert signer is not None
            raise SealProblem(
                f"the {what} is by {signer.subject.human_friendly}, not by a seal "
                f"certificate of {claimed_name} the bundle claims: not that provider"
            )
    if provider is not None and any(bytes.fromhex(d) not in provider.seals for d in claimed):
        raise SealProblem(
            f"claims to be from {claimed_name}, by a seal certificate that is not one the "
            f"provider declared ({provider.names or 'none declared'}): not the provider"
        )
    whom = " (one of the provider's declared seal certificates)" if provider else ""
    return f"{said}; every seal and the PDF signature by its seal certificate{whom}"


def _digest(what: str, signer: asn1_x509.Certificate | None) -> str:
    if signer is None:
        raise SealProblem(
            f"the {what} has no valid signature whose signer the claim could be checked against"
        )
    return hashlib.sha256(signer.dump()).hexdigest()
