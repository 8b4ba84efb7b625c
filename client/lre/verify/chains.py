"""Trust and revocation of a seal's certificates at the time its timestamp proves.

Anchoring uses pyHanko's certificate validator (path building, signatures,
validity periods, CA constraints, extended key usage) with only the
certificates the bundle carries and only the anchors the verifier gives.
Revocation is read from the bundle's CRLs alone (no fetching), by the rule
a B-LT signature is checked with: for every certificate of the path below
the anchor, a CRL signed by its issuer that was current at the seal's time
(or issued after it), and no CRL of that issuer revoking it at or before
that time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from dataclasses import dataclass

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, ValidationError

from lre.verify.cms import SealProblem, verify_signature


@dataclass(frozen=True)
class Path:
    certificates: list[asn1_x509.Certificate]  # root first, leaf last
    # False: the root is the bundle's own, which the verifier did not say it trusts.
    anchored: bool

    @property
    def root(self) -> str:
        name: str = self.certificates[0].subject.human_friendly
        return name


def anchor(
    leaf: asn1_x509.Certificate,
    others: list[asn1_x509.Certificate],
    anchors: list[asn1_x509.Certificate],
    at: dt.datetime,
    usage: str,
) -> Path:
    """The path from ``leaf`` to one of ``anchors``, valid at ``at``.

    With no anchors, the path is checked up to a root the bundle carries
    (``anchored`` False). Raises SealProblem for a path that cannot be built
    or is not valid (expired, wrong use, bad signature).
    """
    roots = anchors or [c for c in others if c.self_signed == "maybe"]
    context = ValidationContext(
        trust_roots=roots,
        other_certs=others,
        moment=at,
        allow_fetching=False,
        # Revocation is checked below from the bundle's CRLs.
        revocation_mode="soft-fail",
    )
    validator = CertificateValidator(leaf, validation_context=context)
    eku = {"time_stamping"} if usage == "time_stamping" else None
    try:
        path = asyncio.run(
            validator.async_validate_usage(set(), extended_key_usage=eku)  # type: ignore[no-untyped-call]
        )
    except PathBuildingError:
        where = "the trust anchors given" if anchors else "a root in the bundle"
        raise SealProblem(f"no path from the certificate to {where}") from None
    except (PathValidationError, ValidationError) as exc:
        raise SealProblem(
            f"the certificate path is not valid at {at:%Y-%m-%dT%H:%M:%SZ}: {exc}"
        ) from None
    return Path(list(path), anchored=bool(anchors))


def check_revocation(path: Path, crls: list[asn1_crl.CertificateList], at: dt.datetime) -> str:
    """How each certificate below the anchor is shown unrevoked at ``at``;
    SealProblem when one is revoked then or no CRL covers it."""
    said = []
    certificates = path.certificates
    for issuer, certificate in itertools.pairwise(certificates):
        theirs = [c for c in crls if c.issuer == issuer.subject and _signed_by(c, issuer)]
        if not theirs:
            raise SealProblem(f"no CRL of {issuer.subject.human_friendly} in the bundle")
        covering = [
            c
            for c in theirs
            if (c["tbs_cert_list"]["next_update"].native or at) > at
            or c["tbs_cert_list"]["this_update"].native >= at
        ]
        if not covering:
            raise SealProblem(
                f"no CRL of {issuer.subject.human_friendly} was current at {at:%Y-%m-%dT%H:%M:%SZ}"
            )
        for c in theirs:
            for revoked in c["tbs_cert_list"]["revoked_certificates"] or []:
                if revoked["user_certificate"].native != certificate.serial_number:
                    continue
                when: dt.datetime = revoked["revocation_date"].native
                if when <= at:
                    raise SealProblem(
                        f"{certificate.subject.human_friendly} was revoked on "
                        f"{when:%Y-%m-%dT%H:%M:%SZ}, before the seal's time"
                    )
                said.append(
                    f"{_cn(certificate)} revoked only after the seal's time ({when:%Y-%m-%d})"
                )
        said.append(f"{_cn(certificate)} not revoked")
    return "; ".join(said)


def _signed_by(crl: asn1_crl.CertificateList, issuer: asn1_x509.Certificate) -> bool:
    algorithm = crl["signature_algorithm"].hash_algo
    try:
        verify_signature(issuer, crl["signature"].native, crl["tbs_cert_list"].dump(), algorithm)
    except SealProblem:
        return False
    return True


def _cn(certificate: asn1_x509.Certificate) -> str:
    return str(certificate.subject.native.get("common_name", certificate.subject.human_friendly))
