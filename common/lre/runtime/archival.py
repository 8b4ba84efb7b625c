"""CAdES archive timestamps (ETSI EN 319 122-1, level B-LTA): declared once,
made by the server, checked by ``lre-verify`` and ``verify-log``.

An archive-time-stamp-v3 is an unsigned attribute of the seal's SignerInfo
holding an RFC 3161 token whose message imprint is the hash of (clause
5.5.3): the encapsulated content type, the hash of the content, the
SignerInfo's fields before its unsigned attributes (version, sid,
digestAlgorithm, signedAttrs, signatureAlgorithm, signature), and the
ATSHashIndexV3 of the token's own ats-hash-index-v3 unsigned attribute,
which lists the hash of every certificate, CRL and unsigned attribute value
present when it was made. So each archive timestamp covers the signature,
its signature timestamp, the validation data added so far and the archive
timestamps before it: a chain, each link renewed before the last one's
certificate expires or its algorithm weakens.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto import algos, cms, core, tsp
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509

ID_ARCHIVE_TIME_STAMP_V3 = "0.4.0.1733.2.4"
ID_ATS_HASH_INDEX_V3 = "0.4.0.19122.1.5"
_HASH = "sha256"


class ArchiveProblem(ValueError):
    """What is wrong with a seal's archive timestamps, in words a person can act on."""


class _OctetStrings(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.OctetString


class _Elements(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.Any


class ATSHashIndexV3(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 -- asn1crypto reads this class attribute as declared
        ("hash_ind_algorithm", algos.DigestAlgorithm, {"default": {"algorithm": _HASH}}),
        ("certificates_hash_index", _OctetStrings),
        ("crls_hash_index", _OctetStrings),
        ("unsigned_attrs_hash_index", _OctetStrings),
    ]


@dataclass(frozen=True)
class ArchiveStamp:
    """One archive timestamp, once its imprint is shown to be over the seal."""

    time: dt.datetime
    token: cms.ContentInfo
    tst_info: bytes  # the signed TSTInfo, DER

    @property
    def certificates(self) -> list[asn1_x509.Certificate]:
        return _certificates(self.token["content"])


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _certificates(signed_data: cms.SignedData) -> list[asn1_x509.Certificate]:
    return [c.chosen for c in signed_data["certificates"] or [] if c.name == "certificate"]


def crls(signed_data: cms.SignedData) -> list[asn1_crl.CertificateList]:
    return [c.chosen for c in signed_data["crls"] or [] if c.name == "crl"]


def _attribute_hashes(attributes: list[cms.CMSAttribute]) -> list[bytes]:
    """One hash per value: the attribute's type then that value, each DER."""
    return [_sha256(a["type"].dump() + v.dump()) for a in attributes for v in a["values"]]


def hash_index(signed_data: cms.SignedData, signer_info: cms.SignerInfo) -> ATSHashIndexV3:
    return ATSHashIndexV3(
        {
            "certificates_hash_index": [
                _sha256(c.dump()) for c in signed_data["certificates"] or []
            ],
            "crls_hash_index": [_sha256(c.dump()) for c in signed_data["crls"] or []],
            "unsigned_attrs_hash_index": _attribute_hashes(
                list(signer_info["unsigned_attrs"] or [])
            ),
        }
    )


def imprint(
    signed_data: cms.SignedData, signer_info: cms.SignerInfo, index: ATSHashIndexV3
) -> bytes:
    """The SHA-256 an archive timestamp with this index must be over."""
    encapsulated = signed_data["encap_content_info"]
    content = bytes(encapsulated["content"].contents)
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    parts = [
        encapsulated["content_type"].dump(),
        hashlib.new(digest_name, content).digest(),
        *(
            signer_info[name].dump()
            for name in (
                "version",
                "sid",
                "digest_algorithm",
                "signed_attrs",
                "signature_algorithm",
                "signature",
            )
        ),
        index.dump(),
    ]
    return _sha256(b"".join(parts))


def _load(seal: bytes) -> tuple[cms.ContentInfo, cms.SignedData, cms.SignerInfo]:
    try:
        info = cms.ContentInfo.load(seal)
        signed_data = info["content"]
        (signer_info,) = list(signed_data["signer_infos"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ArchiveProblem(f"not a readable CMS SignedData ({type(exc).__name__})") from None
    return info, signed_data, signer_info


def extend(
    seal: bytes,
    stamp: Callable[[bytes], bytes],
    certificates: list[bytes],
    revocation: list[bytes],
) -> bytes:
    """``seal`` with one more archive timestamp. ``certificates`` and
    ``revocation`` (DER certificates and CRLs: the chains of the timestamps
    already there and of the TSA about to stamp, with their CAs' current
    CRLs) are added first, those not there yet, so that the new timestamp
    covers them. ``stamp`` takes a SHA-256 and returns a timestamp token
    (ContentInfo, DER) over it."""
    _, signed_data, signer_info = _load(seal)
    have_certs = {c.dump() for c in signed_data["certificates"] or []}
    extra_certs = [
        cms.CertificateChoices({"certificate": asn1_x509.Certificate.load(c)})
        for c in certificates
        if cms.CertificateChoices({"certificate": asn1_x509.Certificate.load(c)}).dump()
        not in have_certs
    ]
    have_crls = {c.dump() for c in signed_data["crls"] or []}
    extra_crls = [
        cms.RevocationInfoChoice({"crl": asn1_crl.CertificateList.load(c)})
        for c in revocation
        if cms.RevocationInfoChoice({"crl": asn1_crl.CertificateList.load(c)}).dump()
        not in have_crls
    ]
    if extra_certs:
        signed_data["certificates"] = cms.CertificateSet(
            [*(signed_data["certificates"] or []), *extra_certs]
        )
    if extra_crls:
        signed_data["crls"] = cms.RevocationInfoChoices([*(signed_data["crls"] or []), *extra_crls])
    index = hash_index(signed_data, signer_info)
    token = cms.ContentInfo.load(stamp(imprint(signed_data, signer_info, index)))
    token_data = token["content"]
    token_signer = token_data["signer_infos"][0]
    # Unsigned, so adding it leaves the token's signature as the TSA made it.
    token_signer["unsigned_attrs"] = cms.CMSAttributes(
        [
            *(token_signer["unsigned_attrs"] or []),
            cms.CMSAttribute({"type": ID_ATS_HASH_INDEX_V3, "values": [index]}),
        ]
    )
    # Each level set again: asn1crypto encodes a value anew only when it was
    # itself assigned to, and re-encoding everything (dump(force=True)) would
    # risk the signed bytes.
    token_data["signer_infos"] = cms.SignerInfos([token_signer])
    token = cms.ContentInfo({"content_type": "signed_data", "content": token_data})
    signer_info["unsigned_attrs"] = cms.CMSAttributes(
        [
            *(signer_info["unsigned_attrs"] or []),
            cms.CMSAttribute({"type": ID_ARCHIVE_TIME_STAMP_V3, "values": [token]}),
        ]
    )
    signed_data["signer_infos"] = cms.SignerInfos([signer_info])
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())


def _tst_info(token: cms.ContentInfo) -> tuple[bytes, tsp.TSTInfo]:
    encapsulated = token["content"]["encap_content_info"]
    if encapsulated["content_type"].native != "tst_info":
        raise ArchiveProblem("an archive timestamp token does not hold a TSTInfo")
    der = bytes(encapsulated["content"].contents)
    return der, tsp.TSTInfo.load(der)


def index_of(token: cms.ContentInfo) -> ATSHashIndexV3:
    for attr in token["content"]["signer_infos"][0]["unsigned_attrs"] or []:
        if attr["type"].dotted == ID_ATS_HASH_INDEX_V3:
            return parse_index(attr["values"][0].dump())
    raise ArchiveProblem("an archive timestamp has no ats-hash-index-v3")


def parse_index(der: bytes) -> ATSHashIndexV3:
    """The index, its algorithm given or left to its default: both it and the
    lists are SEQUENCEs, so the number of elements tells which is there."""
    elements = list(_Elements.load(der))
    if len(elements) == 3:
        lists = [_OctetStrings.load(e.dump()) for e in elements]
        return ATSHashIndexV3(
            {
                "certificates_hash_index": lists[0],
                "crls_hash_index": lists[1],
                "unsigned_attrs_hash_index": lists[2],
            }
        )
    if len(elements) == 4:
        loaded: ATSHashIndexV3 = ATSHashIndexV3.load(der)
        return loaded
    raise ArchiveProblem("an ats-hash-index-v3 is not an ATSHashIndexV3")


def stamps(seal: bytes) -> list[ArchiveStamp]:
    """The seal's archive timestamps, oldest first, each shown to be over the
    signature, the validation data it lists and every unsigned attribute
    before it (so nothing it covered was changed since). Says nothing of
    the tokens' signatures or their TSAs' trust: the caller checks those."""
    _, signed_data, signer_info = _load(seal)
    certificates = {_sha256(c.dump()) for c in signed_data["certificates"] or []}
    revocation = {_sha256(c.dump()) for c in signed_data["crls"] or []}
    found: list[ArchiveStamp] = []
    before: list[cms.CMSAttribute] = []
    for attr in signer_info["unsigned_attrs"] or []:
        if attr["type"].dotted != ID_ARCHIVE_TIME_STAMP_V3:
            before.append(attr)
            continue
        try:
            (value,) = list(attr["values"])
            token = cms.ContentInfo.load(value.dump())
            index = index_of(token)
            tst_der, tst = _tst_info(token)
        except (ValueError, TypeError, KeyError) as exc:
            raise ArchiveProblem(
                f"archive timestamp {len(found) + 1} is not readable ({type(exc).__name__})"
            ) from None
        n = len(found) + 1
        if index["hash_ind_algorithm"]["algorithm"].native != _HASH:
            raise ArchiveProblem(f"archive timestamp {n}: hash index algorithm not accepted")
        if not {bytes(h) for h in index["certificates_hash_index"].native} <= certificates:
            raise ArchiveProblem(f"archive timestamp {n}: a certificate it covered was removed")
        if not {bytes(h) for h in index["crls_hash_index"].native} <= revocation:
            raise ArchiveProblem(f"archive timestamp {n}: a CRL it covered was removed")
        if list(index["unsigned_attrs_hash_index"].native) != _attribute_hashes(before):
            raise ArchiveProblem(
                f"archive timestamp {n}: the timestamps it covered were changed or removed"
            )
        message = tst["message_imprint"]
        if message["hash_algorithm"]["algorithm"].native != _HASH or bytes(
            message["hashed_message"].native
        ) != imprint(signed_data, signer_info, index):
            raise ArchiveProblem(f"archive timestamp {n} is not over this seal")
        when: dt.datetime = tst["gen_time"].native
        # To the second: TSAs that give whole seconds (OpenSSL's) truncate.
        if found and when.replace(microsecond=0) < found[-1].time.replace(microsecond=0):
            raise ArchiveProblem(f"archive timestamp {n} is older than the one before it")
        found.append(ArchiveStamp(when, token, tst_der))
        before.append(attr)
    return found


def seal_crls(seal: bytes) -> list[asn1_crl.CertificateList]:
    return crls(_load(seal)[1])


def seal_certificates(seal: bytes) -> list[asn1_x509.Certificate]:
    return _certificates(_load(seal)[1])


def same_signature(original: bytes, archived: bytes) -> bool:
    """Whether ``archived`` is ``original`` extended: the same content, the
    same signature over the same signed attributes, and the same signature
    timestamp (an archive seal with another one would date the signature
    otherwise than the seal the log names)."""
    _, a, sa = _load(original)
    _, b, sb = _load(archived)
    return bool(
        a["encap_content_info"].dump() == b["encap_content_info"].dump()
        and sa["signed_attrs"].dump() == sb["signed_attrs"].dump()
        and sa["signature"].native == sb["signature"].native
        and _signature_timestamps(sa) == _signature_timestamps(sb)
    )


def _signature_timestamps(signer_info: cms.SignerInfo) -> list[bytes]:
    return [
        value.dump()
        for attribute in signer_info["unsigned_attrs"] or []
        if attribute["type"].native == "signature_time_stamp_token"
        for value in attribute["values"]
    ]
