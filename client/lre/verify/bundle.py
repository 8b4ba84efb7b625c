"""``verify_bundle``: every check of an evidence bundle, each named, none fatal.

A check that cannot run because what it needs is missing or unreadable fails
with that reason; the others still run, so the report names every damaged
part and not only the first.
"""

from __future__ import annotations

import hashlib

from asn1crypto import crl as asn1_crl
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509

from lre.runtime import bundle_layout as layout
from lre.runtime.longterm import Compromise
from lre.verify import chains, cms, pdf
from lre.verify.checks import Bundle, Missing, check, provider_check
from lre.verify.claim import check_claim
from lre.verify.cms import SealProblem
from lre.verify.logpart import check_issuer, check_log, check_readme
from lre.verify.longterm import check_longterm
from lre.verify.members import open_bundle
from lre.verify.provider import Provider, load_json
from lre.verify.report import Report


def verify_bundle(
    data: bytes,
    anchors: list[bytes] | None = None,
    provider: Provider | None = None,
    compromised: dict[str, Compromise] | None = None,
) -> Report:
    """The report on ``data`` (the bundle ZIP) under ``anchors`` (DER certificates
    the verifier trusts; none: every chain is reported not anchored) from
    ``provider`` (its declared seal and TSA certificates; none: whose seal it
    is stays unchecked, and the verdict is not VALID)."""
    report = Report()
    trusted = [asn1_x509.Certificate.load(a) for a in anchors or []]
    for anchor in trusted:
        anchor.native  # noqa: B018 -- a --trust file that is no certificate fails here
    leaves = [a for a in trusted if not a.ca]
    if leaves:
        # A certificate is shown unrevoked by its issuer's CRL: with a leaf as
        # its own anchor there is no issuer below the anchor, and revocation
        # would go unchecked. Anchors are the provider's CAs.
        names = "; ".join(a.subject.human_friendly for a in leaves)
        report.add(
            "trust anchors",
            False,
            f"not a CA certificate: {names}. Give the provider's root CA with --trust; its "
            "seal and TSA certificates go with --provider",
        )
        trusted = [a for a in trusted if a.ca]
    report.anchored = bool(trusted)
    try:
        _verify(report, data, trusted, provider, compromised or {})
    except Exception as exc:  # whatever a hostile bundle triggers: a finding, not a traceback
        report.add("bundle", False, f"malformed ({type(exc).__name__})")
    return report


def _verify(
    report: Report,
    data: bytes,
    trusted: list[asn1_x509.Certificate],
    provider: Provider | None,
    compromised: dict[str, Compromise],
) -> None:
    bundle = open_bundle(report, data)
    if bundle is None:
        return
    _check_manifest(report, bundle)
    certs = _bundle_certificates(report, bundle)
    crls = _bundle_crls(report, bundle)
    evidence_name = _check_evidence(report, bundle)

    signers = []
    for label, seal, document in (
        ("evidence seal", layout.EVIDENCE_SEAL, layout.EVIDENCE),
        ("tree head seal", layout.TREE_HEAD_SEAL, layout.TREE_HEAD),
    ):
        signers.append(
            _check_seal(report, label, bundle, seal, document, certs, crls, trusted, provider)
        )
    check_issuer(report, bundle, signers[0])
    signature = _check_pdf(report, bundle, trusted, certs, provider)
    check_claim(
        report,
        bundle,
        {
            "evidence seal": signers[0],
            "tree head seal": signers[1],
            "proof PDF": signature.certificate if signature else None,
        },
        provider,
    )
    roots = [c for chain in certs.values() for c in chain if c.self_signed == "maybe"]
    check_longterm(
        report,
        bundle,
        [*certs.values()],
        crls,
        trusted or roots,
        signature,
        compromised,
        provider,
    )
    check_log(report, bundle, evidence_name)
    check_readme(report, bundle)


def _check_manifest(report: Report, bundle: Bundle) -> None:
    with check(report, "manifest") as ok:
        manifest = load_json(bundle[layout.MANIFEST], "manifest.json")
        if not isinstance(manifest, dict) or manifest.get("format") != layout.FORMAT:
            raise SealProblem(f"manifest.json is not {layout.FORMAT}")
        listed: dict[str, dict[str, object]] = manifest["members"]
        present = set(bundle.members) - {layout.MANIFEST}
        # Nothing rides along that no seal covers and the format does not name.
        foreign = (set(listed) | present) - set(layout.MEMBERS) - set(layout.OPTIONAL)
        problems = [f"{name} is not a member of {layout.FORMAT}" for name in sorted(foreign)]
        problems += [f"{name} is not listed" for name in sorted(present - set(listed))]
        problems += [f"{name} is listed but absent" for name in sorted(set(listed) - present)]
        for name in sorted(present & set(listed)):
            data = bundle.members[name]
            entry = listed[name]
            if not isinstance(entry, dict) or set(entry) != {"sha256", "size"}:
                problems.append(f"{name}'s entry holds more than its SHA-256 and size")
                continue
            if entry.get("sha256") != hashlib.sha256(data).hexdigest() or entry.get("size") != len(
                data
            ):
                problems.append(f"{name} does not match its SHA-256")
        if problems:
            raise SealProblem("; ".join(problems))
        ok(f"SHA-256 of {len(listed)} members match")


def _load_pem(data: bytes, kind: str) -> list[bytes]:
    """The DER of each block, the file being exactly those blocks as the
    builder armors them: no text around or between them, no block of
    another kind (no seal covers a word of it)."""
    if not pem.detect(data):
        raise SealProblem(f"not PEM {kind}s")
    blocks = list(pem.unarmor(data, multiple=True))
    if any(type_name != kind for type_name, _h, _der in blocks) or data != b"".join(
        pem.armor(kind, der) for _t, _h, der in blocks
    ):
        raise SealProblem(f"more than PEM {kind}s: text no seal covers")
    return [der for _t, _h, der in blocks]


def _bundle_certificates(report: Report, bundle: Bundle) -> dict[str, list[asn1_x509.Certificate]]:
    found: dict[str, list[asn1_x509.Certificate]] = {}
    for name in (layout.SEAL_CHAIN, layout.TSA_CHAIN):
        try:
            found[name] = [
                asn1_x509.Certificate.load(d) for d in _load_pem(bundle[name], "CERTIFICATE")
            ]
            for c in found[name]:
                c.native  # noqa: B018 -- parse now, fail here
        except (SealProblem, Missing, ValueError, TypeError) as exc:
            found[name] = []
            report.add(name, False, f"unreadable: {exc}")
    return found


def _bundle_crls(report: Report, bundle: Bundle) -> list[asn1_crl.CertificateList]:
    try:
        crls = [
            asn1_crl.CertificateList.load(d) for d in _load_pem(bundle[layout.CRLS], "X509 CRL")
        ]
        for c in crls:
            c.native  # noqa: B018 -- parse now, fail here
        return crls
    except (SealProblem, Missing, ValueError, TypeError) as exc:
        report.add("crls", False, f"unreadable: {exc}")
        return []


def _check_evidence(report: Report, bundle: Bundle) -> str | None:
    """The evidence's resource name as the log names it
    (``letters/{letter}/evidence/{id}``), if evidence.json can be read."""
    evidence_name: str | None = None
    with check(report, "evidence") as ok:
        document = load_json(bundle[layout.EVIDENCE], "evidence.json")
        if not isinstance(document, dict) or not str(document.get("format", "")).startswith(
            "lre-evidence/"
        ):
            raise SealProblem("evidence.json is not an lre-evidence document")
        evidence_id = str(document["evidenceId"])
        evidence_name = f"{document['letterId']}/evidence/{evidence_id}"
        ok(f"{document['format']} {evidence_id}, {document.get('event', '?').rsplit('/', 1)[-1]}")
    return evidence_name


def _check_seal(
    report: Report,
    label: str,
    bundle: Bundle,
    seal_name: str,
    document_name: str,
    certs: dict[str, list[asn1_x509.Certificate]],
    crls: list[asn1_crl.CertificateList],
    trusted: list[asn1_x509.Certificate],
    provider: Provider | None,
) -> asn1_x509.Certificate | None:
    """The checks of one CAdES seal: document, signature, timestamp, that the
    provider sealed and its TSA stamped, B-LT data, chains to the anchors,
    revocation. Both chains come from the bundle. Gives the seal's signer."""
    seal_chain, tsa_chain = certs[layout.SEAL_CHAIN], certs[layout.TSA_CHAIN]
    bundle_certs = [*seal_chain, *tsa_chain]
    seal: cms.Seal | None = None
    signer = stamp = None
    with check(report, f"{label}: covers the document") as ok:
        seal = cms.load(bundle[seal_name])
        cms.check_content(seal, bundle[document_name])
        ok(f"encapsulates exactly {document_name}")
    if seal is None:
        return None
    with check(report, f"{label}: signature") as ok:
        signer = cms.check_signature(seal, bundle_certs)
        ok(f"by {signer.subject.human_friendly}")
    with check(report, f"{label}: signature timestamp") as ok:
        stamp = cms.check_timestamp(seal, bundle_certs)
        ok(f"{stamp.time:%Y-%m-%dT%H:%M:%SZ} by {stamp.tsa.subject.human_friendly}")
    if signer is not None:
        sealer = signer
        provider_check(
            report,
            f"{label}: the provider's seal",
            provider,
            lambda p: p.check_seal(sealer, "sealed"),
        )
    if stamp is not None:
        tsa = stamp.tsa
        provider_check(
            report, f"{label}: the provider's TSA", provider, lambda p: p.check_tsa(tsa, "stamped")
        )
    with check(report, f"{label}: validation data (B-LT)") as ok:
        carried = {c.dump() for c in seal.certificates}
        needed = [c for c in (signer, stamp.tsa if stamp else None) if c is not None]
        if any(c.dump() not in carried for c in needed):
            raise SealProblem("the seal does not carry the signer's and the TSA's certificates")
        if not seal.crls:
            raise SealProblem("the seal carries no CRL (CAdES B-T, not B-LT)")
        ok(f"{len(seal.certificates)} certificates and {len(seal.crls)} CRL(s) in the SignedData")
    if signer is None or stamp is None:
        return signer
    paths: list[chains.Path] = []
    name = f"{label}: certificate chains"
    try:
        own_seal_chain = _chain_of(seal_chain, signer, layout.SEAL_CHAIN, "the seal's")
        own_tsa_chain = _chain_of(tsa_chain, stamp.tsa, layout.TSA_CHAIN, "the timestamp's")
        paths = [
            chains.anchor(signer, own_seal_chain, trusted, stamp.time, "seal"),
            chains.anchor(stamp.tsa, own_tsa_chain, trusted, stamp.time, "time_stamping"),
        ]
    except SealProblem as exc:
        report.add(name, False, str(exc))
    else:
        roots = ", ".join(sorted({p.root for p in paths}))
        if all(p.anchored for p in paths):
            report.add(name, True, f"seal and TSA valid at the timestamp's time up to {roots}")
        else:
            report.unanchored(
                name,
                f"seal and TSA chains end at the bundle's own root ({roots}), "
                "which is not trusted: give --trust with the provider's root CA",
            )
    if not paths:
        report.add(f"{label}: revocation", False, "no chain to check")
        return signer
    with check(report, f"{label}: revocation") as ok:
        for path in paths:
            ok(chains.check_revocation(path, crls, stamp.time))
    return signer


def _chain_of(
    chains_: list[asn1_x509.Certificate], leaf: asn1_x509.Certificate, name: str, whose: str
) -> list[asn1_x509.Certificate]:
    """The chain in ``chains_`` (one or more chains, each leaf first then its
    CAs: one per certificate the bundle's seals were made with) that starts
    with ``leaf``."""
    for i, certificate in enumerate(chains_):
        if certificate.dump() == leaf.dump():
            chain = [certificate]
            for issuer in chains_[i + 1 :]:
                if not issuer.ca:
                    break
                chain.append(issuer)
            return chain
    raise SealProblem(f"{name} does not hold {whose} certificate")


def _check_pdf(
    report: Report,
    bundle: Bundle,
    trusted: list[asn1_x509.Certificate],
    certs: dict[str, list[asn1_x509.Certificate]],
    provider: Provider | None,
) -> pdf.PdfSignature | None:
    """The PDF proof's checks; gives its signature."""
    roots = [c for chain in certs.values() for c in chain if c.self_signed == "maybe"]
    signature = None
    name = "proof PDF: PAdES signature"
    try:
        signature = pdf.check_signature(bundle[layout.PROOF_PDF], trusted, roots)
    except (SealProblem, Missing) as exc:
        report.add(name, False, str(exc))
    except Exception as exc:  # malformed input, whatever the PDF reader raises
        report.add(name, False, f"malformed ({type(exc).__name__})")
    else:
        provider_check(
            report,
            "proof PDF: the provider's seal",
            provider,
            lambda p: "; ".join(
                (
                    p.check_seal(signature.certificate, "signed"),
                    p.check_tsa(signature.tsa, "stamped"),
                )
            ),
        )
        detail = (
            f"B-LT, intact, timestamped {signature.time:%Y-%m-%dT%H:%M:%SZ}, by {signature.signer}"
        )
        if signature.anchored:
            report.add(name, True, detail)
        else:
            report.unanchored(
                name, f"{detail}; its chain ends at the bundle's own root: give --trust"
            )
    with check(report, "proof PDF: attachments") as ok:
        attached = list(pdf.attachments(bundle[layout.PROOF_PDF]).values())
        if bundle[layout.EVIDENCE] not in attached:
            raise SealProblem("the PDF does not embed this evidence.json")
        if bundle[layout.EVIDENCE_SEAL] not in attached:
            raise SealProblem("the PDF does not embed this evidence.p7m")
        if len(attached) != 2:
            raise SealProblem(f"the PDF embeds {len(attached)} files: these two only are sealed")
        ok("embeds exactly this evidence.json and evidence.p7m")
    return signature
