"""Whether a proofing certificate is an EU qualified certificate (eIDAS
art. 24(1a)(c)), as the trusted lists the provider configured say.

Two things must hold, and pyHanko's ``pyhanko.sign.validation.qualified``
decides both (no TL parsing or XML signature code here): the certificate
declares itself qualified (QCStatements, ETSI EN 319 412-5: QcCompliance, and
its QcType), and a CA on its path is a qualified CA service (CA/QC, status
granted) on a trusted list (ETSI TS 119 612), whose qualifiers may override
what the certificate says. It must hold when the certificate was issued and
now: a service withdrawn since makes its certificates qualified no more.

A list counts only once its XAdES signature verifies under one of the
configured scheme operator (TLSO) certificates; the list's metadata (territory,
sequence number, next update) is read from the very XML that signature covers.
A list past its NextUpdate shows nothing: the supervisory body may have
withdrawn a service since, so at level high it fails closed. The files are read
again when they change; a new version that does not verify leaves nothing
qualified until it is fixed (logged at ERROR)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.ades import qualified_asn1
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.qualified.assess import QualificationAssessor
from pyhanko.sign.validation.qualified.q_status import QualificationResult
from pyhanko.sign.validation.qualified.tsp import TSPServiceParsingError
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError
from pyhanko_certvalidator.path import ValidationPath

from lre.runtime.config import ConfigError

logger = logging.getLogger("lre.server.trusted_lists")


class TrustedListError(ConfigError):
    """A configured trusted list that cannot be used: which file, and why."""


@dataclass(frozen=True)
class ListInfo:
    """A trusted list as loaded: what an assessor is shown it was."""

    file: str
    territory: str
    sequence: int
    issued: dt.datetime | None
    next_update: dt.datetime | None
    sha256: str

    def label(self) -> str:
        return f"{self.territory} trusted list #{self.sequence}"


@dataclass(frozen=True)
class Qualification:
    """Whether the certificate is qualified; if so, by which list's service."""

    qualified: bool
    # Why not (no personal data: said to the caller and journaled).
    reason: str | None = None
    qc_type: str | None = None  # qct_esign, qct_eseal or qct_web
    qscd: bool = False
    service: str | None = None
    trusted_list: ListInfo | None = None

    def details(self) -> dict[str, object]:
        """For the identity record."""
        if not self.qualified or self.trusted_list is None:
            return {"qualified": False, "reason": self.reason}
        listed = self.trusted_list
        return {
            "qualified": True,
            "qc_type": self.qc_type,
            "qscd": self.qscd,
            "service": self.service,
            "trusted_list": {
                "file": listed.file,
                "territory": listed.territory,
                "sequence_number": listed.sequence,
                "issued": listed.issued.isoformat() if listed.issued else None,
                "next_update": listed.next_update.isoformat() if listed.next_update else None,
                "sha256": listed.sha256,
            },
        }


@dataclass(frozen=True)
class _Loaded:
    info: ListInfo
    assessor: QualificationAssessor


def _time(value: object) -> dt.datetime | None:
    to_datetime = getattr(value, "to_datetime", None)
    moment: dt.datetime | None = to_datetime() if to_datetime is not None else None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # TS 119 612 times are UTC
    return moment


@functools.lru_cache(maxsize=64)
def _load(path: str, stamp: tuple[int, ...], signers: tuple[bytes, ...]) -> _Loaded:
    """One list, verified then parsed (cached by the file's stat stamp:
    the server process loads it at start, its check before serving does too;
    the lists in use are also kept by TrustedLists, however many)."""
    # Imported here, where a list is loaded: its XML stack (xsdata, signxml,
    # lxml) is a third of a second of every start of a server with no list.
    from pyhanko.sign.validation.qualified import eutl_parse

    name = Path(path).name
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrustedListError(f"trusted list {name}: {exc.strerror}") from None
    certificates = [asn1_x509.Certificate.load(der) for der in signers]
    try:
        # pyHanko's own steps of trust_list_to_registry, kept apart so that the
        # list's metadata comes from the XML its signature covers.
        xml = eutl_parse._validate_and_extract_tl_data_multiple_certs(
            data.decode("utf-8"), certificates, validation_time=None
        )
        registry, errors = eutl_parse.trust_list_to_registry_unsafe(xml)
        scheme = eutl_parse._raw_tl_parse(xml).scheme_information
    except SignatureValidationError as exc:
        raise TrustedListError(
            f"trusted list {name}: its signature does not verify under the configured "
            f"trusted list signer certificates ({exc.failure_message.splitlines()[0]})"
        ) from None
    except (TSPServiceParsingError, ValueError, SyntaxError) as exc:
        # SyntaxError: lxml's, for a file that is not XML at all.
        reason = str(exc).splitlines()[0][:200]
        raise TrustedListError(f"trusted list {name}: not a TS 119 612 list ({reason})") from None
    for error in errors:
        logger.warning("trusted list service skipped", extra={"file": name, "reason": str(error)})
    if scheme is None or scheme.tslsequence_number is None:
        raise TrustedListError(f"trusted list {name}: no scheme information")
    next_update = scheme.next_update.date_time if scheme.next_update else None
    info = ListInfo(
        file=name,
        territory=scheme.scheme_territory.value if scheme.scheme_territory else "",
        sequence=scheme.tslsequence_number,
        issued=_time(scheme.list_issue_date_time),
        next_update=_time(next_update),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    logger.info(
        "trusted list loaded",
        extra={"file": name, "list": info.label(), "sha256": info.sha256},
    )
    return _Loaded(info, QualificationAssessor(registry))


class TrustedLists:
    """The configured lists; ``assess`` says whether a certificate is qualified."""

    def __init__(self, files: tuple[Path, ...], signers: tuple[x509.Certificate, ...]) -> None:
        if not files or not signers:
            raise TrustedListError("trusted lists need their files and their signer certificates")
        self._files = files
        self._signers = tuple(c.public_bytes(serialization.Encoding.DER) for c in signers)
        self._lock = threading.Lock()
        # Each file's list as last loaded, by its stat stamp: parsed again only
        # when the file changes.
        self._kept: dict[Path, tuple[tuple[int, ...], _Loaded]] = {}
        self.load()  # at start, a list that does not load is fatal

    def load(self) -> tuple[_Loaded, ...]:
        loaded = []
        for path in self._files:
            try:
                stat = path.stat()
            except OSError as exc:
                raise TrustedListError(f"trusted list {path.name}: {exc.strerror}") from None
            # A copy that keeps the old time and size (cp -p, rsync -t) is
            # still a new file (inode, change time).
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_ctime_ns)
            with self._lock:
                kept = self._kept.get(path)
            if kept is None or kept[0] != stamp:
                kept = (stamp, _load(str(path), stamp, self._signers))
                with self._lock:
                    self._kept[path] = kept
            loaded.append(kept[1])
        return tuple(loaded)

    def current(self) -> tuple[_Loaded, ...] | str:
        """The lists as the files are now, or why they cannot be used."""
        try:
            return self.load()
        except TrustedListError as exc:
            logger.error("trusted list unusable", extra={"reason": str(exc)})
            return "the provider's trusted lists cannot be used now"

    def assess(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        anchors: tuple[x509.Certificate, ...],
        now: dt.datetime,
    ) -> Qualification:
        lists = self.current()
        if isinstance(lists, str):
            return Qualification(False, lists)
        certificate = _asn1(leaf)
        try:
            statements = qualified_asn1.get_qc_statements(certificate)
            compliant = any(s["statement_id"].native == "qc_compliance" for s in statements)
        except ValueError:  # the party's certificate, malformed: its mistake, said as such
            return Qualification(False, "its QCStatements extension cannot be read")
        if not compliant:
            return Qualification(False, "it declares no QcCompliance (EN 319 412-5)")
        path = _path(certificate, [_asn1(c) for c in intermediates], anchors, now)
        if path is None:
            return Qualification(False, "it does not chain to a configured anchor")
        reasons = []
        for listed in lists:
            info = listed.info
            if info.next_update is None:
                # TS 119 612 5.3.14: no next update is a list whose scheme has ceased.
                reasons.append(f"{info.label()} is closed (it has no next update)")
                continue
            if info.next_update < now:
                reasons.append(f"{info.label()} is past its next update")
                continue
            try:
                issued = listed.assessor.check_entity_cert_qualified(
                    path, leaf.not_valid_before_utc
                )
                current = listed.assessor.check_entity_cert_qualified(path, now)
            except NotImplementedError:
                return Qualification(False, "its QcType names several types")
            if _qualified(issued) and _qualified(current):
                status = current.status
                assert current.service_definition is not None  # qualified by a service
                return Qualification(
                    True,
                    qc_type=status.qc_type.value,
                    qscd=status.qc_key_security.is_qscd,
                    service=current.service_definition.base_info.service_name,
                    trusted_list=info,
                )
            if _qualified(current) != _qualified(issued):
                reasons.append(f"{info.label()}: not qualified both when issued and now")
        if not reasons:
            reasons.append("its issuer is no qualified CA on the configured trusted lists")
        return Qualification(False, "; ".join(reasons))


def configured(files: str, signers_file: Path | None, required: bool) -> TrustedLists | None:
    """The lists the settings name (comma-separated files), loaded and
    verified: a ConfigError naming the setting otherwise."""
    paths = tuple(Path(f.strip()) for f in files.split(",") if f.strip())
    if not paths:
        if required:
            raise ConfigError(
                "LRE_SERVER_PROOFING_REQUIRE_QUALIFIED: needs LRE_SERVER_TRUSTED_LIST_FILES"
            )
        return None
    if signers_file is None:
        raise ConfigError("LRE_SERVER_TRUSTED_LIST_SIGNERS_FILE: required with trusted lists")
    try:
        signers = tuple(x509.load_pem_x509_certificates(signers_file.read_bytes()))
    except (OSError, ValueError):
        raise ConfigError(
            "LRE_SERVER_TRUSTED_LIST_SIGNERS_FILE: not a readable PEM certificate bundle"
        ) from None
    try:
        return TrustedLists(paths, signers)
    except TrustedListError as exc:
        raise TrustedListError(f"LRE_SERVER_TRUSTED_LIST_FILES: {exc}") from None


def _qualified(result: QualificationResult) -> bool:
    return result.status.qualified and result.service_definition is not None


def _path(
    certificate: asn1_x509.Certificate,
    intermediates: list[asn1_x509.Certificate],
    anchors: tuple[x509.Certificate, ...],
    now: dt.datetime,
) -> ValidationPath | None:
    """The path to an anchor (revocation is the revocation checker's: not here)."""
    context = ValidationContext(
        trust_roots=[_asn1(a) for a in anchors],
        other_certs=intermediates,
        moment=now,
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    validator = CertificateValidator(
        certificate, intermediate_certs=intermediates, validation_context=context
    )
    try:
        return asyncio.run(validator.async_validate_path())
    except (PathBuildingError, PathValidationError):
        return None


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
