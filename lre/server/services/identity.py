"""Identity use cases: parties, proofing, authentication, consent.

Each method is one transaction (one SQLAlchemy session, committed or rolled
back whole). The rules come from lre.server.domain.identity; this module only
stores and fetches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
import pyotp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import verification
from prometheus_client import Counter
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.adapters import at_rest
from lre.server.clock import utcnow
from lre.server.domain import identity
from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TooManyAttempts,
)
from lre.server.domain.identity import AssuranceLevel, FactorCategory, ProofingMethod
from lre.server.domain.letters import PartyKind
from lre.server.storage import models
from lre.server.storage.db import engine_of, reader
from lre.server.storage.paging import paged

log = logging.getLogger("lre.identity")

LOCKOUTS = Counter(
    "lre_identity_lockouts", "Parties locked out after repeated authentication failures."
)
AUTH_FAILURES = Counter("lre_identity_authentication_failures", "Failed session creations.")

EMAIL = re.compile(
    r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$"
)
MIN_PASSWORD = 12
MAX_PASSWORD = 256
TOTP_ISSUER = "LRE"
CHALLENGE_TTL = dt.timedelta(minutes=5)
EMAIL_CODE_TTL = dt.timedelta(minutes=10)
# A party gets at most one code a minute: its mailbox is not ours to flood.
EMAIL_CODE_INTERVAL = dt.timedelta(minutes=1)
EID_ALGORITHMS = ["ES256", "ES384", "RS256", "PS256"]
# scrypt parameters (RFC 7914): 16 MiB, ~50 ms here.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

Clock = Callable[[], dt.datetime]
Row = TypeVar("Row", models.Party, models.Consent)


@dataclass(frozen=True)
class EidBroker:
    """An OpenID Connect provider whose ID tokens proof identities."""

    issuer: str
    audience: str
    keys: jwt.PyJWKSet
    acr_levels: dict[str, AssuranceLevel]


@dataclass(frozen=True)
class IdentityPolicy:
    secrets_key: at_rest.SecretsKeys
    session_ttl: dt.timedelta = dt.timedelta(minutes=30)
    lockout_threshold: int = 5
    lockout: dt.timedelta = dt.timedelta(minutes=15)
    proof_validity: dt.timedelta = dt.timedelta(days=365)
    trust_anchors: tuple[x509.Certificate, ...] = ()
    eid: EidBroker | None = None


@dataclass(frozen=True)
class NewParty:
    kind: PartyKind
    professional: bool
    email: str
    given_name: str = ""
    family_name: str = ""
    company_name: str = ""
    postal_address: dict[str, Any] | None = None


@dataclass(frozen=True)
class IssuedSession:
    token: str
    record: models.AuthSession


class IdentityService:
    def __init__(
        self, sessions: sessionmaker[DbSession], policy: IdentityPolicy, clock: Clock = utcnow
    ) -> None:
        self._sessions = sessions
        self._engine = engine_of(sessions)
        self._policy = policy
        self._clock = clock

    # -- parties ----------------------------------------------------------

    def create_party(self, request_id: str, new: NewParty) -> models.Party:
        if not request_id or len(request_id) > 128:
            raise InvalidArgument("request_id", "required, at most 128 characters")
        if new.kind is None:
            raise InvalidArgument("party.kind", "must be NATURAL_PERSON or LEGAL_PERSON")
        if not EMAIL.match(new.email) or len(new.email) > 254:
            raise InvalidArgument("party.email", "is not an e-mail address")
        if new.kind is PartyKind.NATURAL_PERSON and not (new.given_name and new.family_name):
            raise InvalidArgument(
                "party.family_name", "a natural person needs given and family names"
            )
        if new.kind is PartyKind.LEGAL_PERSON and not new.company_name:
            raise InvalidArgument("party.company_name", "a legal person needs a company name")
        return self._idempotent(
            models.Party, request_id, lambda db: self._insert_party(db, request_id, new)
        )

    def _insert_party(self, db: DbSession, request_id: str, new: NewParty) -> models.Party:
        party = models.Party(
            id=uuid.uuid4(),
            kind=new.kind,
            professional=new.professional,
            given_name=new.given_name or None,
            family_name=new.family_name or None,
            company_name=new.company_name or None,
            email=new.email,
            postal_address=new.postal_address,
            create_time=self._clock(),
            request_id=request_id,
        )
        db.add(party)
        return party

    def _idempotent(
        self, model: type[Row], request_id: str, create: Callable[[DbSession], Row]
    ) -> Row:
        """The row created by ``request_id``: the existing one on a retry, the new
        one otherwise; when two identical requests race, the loser's unique
        violation returns the winner's row."""
        query = select(model).where(model.request_id == request_id)
        try:
            with self._sessions.begin() as db:
                existing = db.scalar(query)
                return existing if existing is not None else create(db)
        except IntegrityError:
            with self._sessions() as db:
                existing = db.scalar(query)
                if existing is None:
                    raise
                return existing

    def get_party(self, party_id: uuid.UUID) -> models.Party:
        with self._sessions() as db:
            party = db.get(models.Party, party_id)
            if party is None:
                raise NotFound("no such party")
            return party

    def level(self, party_id: uuid.UUID) -> AssuranceLevel | None:
        with self._sessions() as db:
            return self._level(db, party_id)

    def _level(self, db: DbSession, party_id: uuid.UUID) -> AssuranceLevel | None:
        now = self._clock()
        levels = [
            r.level
            for r in db.scalars(
                select(models.IdentityRecord).where(models.IdentityRecord.party_id == party_id)
            )
            if r.expire_time is None or r.expire_time > now
        ]
        return max(levels) if levels else None

    # -- proofing ---------------------------------------------------------

    def record_document_check(
        self,
        party_id: uuid.UUID,
        document_type: str,
        document_number: str,
        document_expires: dt.datetime | None,
        operator_id: str,
    ) -> models.IdentityRecord:
        """An identity document checked by an operator: level substantial,
        valid until the document expires. The number is kept only as a keyed hash."""
        now = self._clock()
        if not document_type or len(document_type) > 64:
            raise InvalidArgument("document_type", "required, at most 64 characters")
        if not document_number.strip() or len(document_number) > 64:
            raise InvalidArgument("document_number", "required, at most 64 characters")
        if not operator_id or len(operator_id) > 128:
            raise InvalidArgument("operator_id", "required")
        if document_expires is None or document_expires <= now:
            raise InvalidArgument("document_expire_time", "the document must be valid today")
        number_hash = hmac.new(
            self._policy.secrets_key.current,
            f"{document_type}:{document_number.strip().upper()}".encode(),
            hashlib.sha256,
        ).hexdigest()
        with self._sessions.begin() as db:
            if db.get(models.Party, party_id) is None:
                raise NotFound("no such party")
            record = models.IdentityRecord(
                id=uuid.uuid4(),
                party_id=party_id,
                method=ProofingMethod.DOCUMENT_CHECK,
                level=AssuranceLevel.SUBSTANTIAL,
                proof_time=now,
                expire_time=document_expires,
                evidence_summary=f"{document_type} checked by operator {operator_id}",
                details={
                    "document_type": document_type,
                    "document_number_hmac": number_hash,
                    "operator": operator_id,
                },
            )
            db.add(record)
        return record

    def list_identity_records(
        self, party_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[models.IdentityRecord], str]:
        with self._sessions() as db:
            if db.get(models.Party, party_id) is None:
                raise NotFound("no such party")
            query = (
                select(models.IdentityRecord)
                .where(models.IdentityRecord.party_id == party_id)
                .order_by(models.IdentityRecord.proof_time, models.IdentityRecord.id)
            )
            return paged(db, query, page_size, page_token)

    def begin_certificate_proofing(self, party_id: uuid.UUID) -> models.ProofingChallenge:
        if not self._policy.trust_anchors:
            raise FailedPrecondition("proofing by certificate is not configured")
        now = self._clock()
        with self._sessions.begin() as db:
            if db.get(models.Party, party_id) is None:
                raise NotFound("no such party")
            challenge = models.ProofingChallenge(
                id=uuid.uuid4(),
                party_id=party_id,
                challenge=os.urandom(32),
                expire_time=now + CHALLENGE_TTL,
            )
            db.add(challenge)
        return challenge

    def complete_certificate_proofing(
        self,
        party_id: uuid.UUID,
        challenge_id: uuid.UUID,
        chain_der: list[bytes],
        signature: bytes,
        revocation_der: list[bytes],
    ) -> models.IdentityRecord:
        """Level high: the party signed our challenge with the key of a
        certificate that chains to a configured anchor, is valid now, allows
        signatures, and is not revoked by the CRLs given."""
        if not self._policy.trust_anchors:
            raise FailedPrecondition("proofing by certificate is not configured")
        if not chain_der:
            raise InvalidArgument("certificate_chain", "the party's certificate is required")
        try:
            leaf, *intermediates = [x509.load_der_x509_certificate(der) for der in chain_der]
        except ValueError:
            raise InvalidArgument("certificate_chain", "must be DER X.509 certificates") from None
        try:
            crls = [x509.load_der_x509_crl(der) for der in revocation_der]
        except ValueError:
            raise InvalidArgument("revocation_data", "must be DER CRLs") from None
        now = self._clock()
        refused: str | None = None
        with self._sessions.begin() as db:
            challenge = db.get(models.ProofingChallenge, challenge_id)
            if challenge is None or challenge.party_id != party_id:
                raise AuthenticationFailed("certificate proof refused")
            if challenge.use_time is not None or challenge.expire_time <= now:
                refused = "challenge used or expired"
            else:
                refused = self._certificate_refusal(
                    leaf, intermediates, crls, challenge.challenge, signature, now
                )
            challenge.use_time = now  # one attempt per challenge, whatever its result
            if refused is None:
                record = models.IdentityRecord(
                    id=uuid.uuid4(),
                    party_id=party_id,
                    method=ProofingMethod.CERTIFICATE,
                    level=AssuranceLevel.HIGH,
                    proof_time=now,
                    expire_time=min(leaf.not_valid_after_utc, now + self._policy.proof_validity),
                    evidence_summary=f"certificate {leaf.subject.rfc4514_string()} "
                    f"issued by {leaf.issuer.rfc4514_string()}",
                    details={
                        "subject": leaf.subject.rfc4514_string(),
                        "issuer": leaf.issuer.rfc4514_string(),
                        "serial": format(leaf.serial_number, "x"),
                        "sha256": leaf.fingerprint(hashes.SHA256()).hex(),
                    },
                )
                db.add(record)
        if refused is not None:
            log.info("certificate proof refused", extra={"reason": refused})
            raise AuthenticationFailed("certificate proof refused")
        return record

    def _certificate_refusal(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        crls: list[x509.CertificateRevocationList],
        challenge: bytes,
        signature: bytes,
        now: dt.datetime,
    ) -> str | None:
        """Why the certificate proof fails, or None when it holds."""
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(list(self._policy.trust_anchors)))
            .time(now)
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        try:
            chain = verifier.verify(leaf, intermediates).chain
        except verification.VerificationError as exc:
            return f"chain: {exc}"
        try:
            usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            return "no key usage"
        if not (usage.digital_signature or usage.content_commitment):
            return "key usage allows no signature"
        issuer = chain[1] if len(chain) > 1 else chain[0]
        for crl in crls:
            if crl.issuer != leaf.issuer or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue
            if crl.next_update_utc is not None and crl.next_update_utc < now:
                return "revocation data out of date"
            if crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None:
                return "certificate revoked"
        key = leaf.public_key()
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
            else:
                return "unsupported key type"
        except InvalidSignature:
            return "challenge signature does not verify"
        return None

    def proof_with_eid_assertion(
        self, party_id: uuid.UUID, id_token: str, nonce: str
    ) -> models.IdentityRecord:
        """An ID token from the eID broker: signature against its keys, issuer,
        audience, expiry and our nonce checked, `acr` mapped to a level, and
        the nonce spent so that the assertion cannot be replayed."""
        broker = self._policy.eid
        if broker is None:
            raise FailedPrecondition("proofing by eID is not configured")
        if not nonce or len(nonce) > 255:
            raise InvalidArgument("nonce", "required, at most 255 characters")
        now = self._clock()
        try:
            key = broker.keys[jwt.get_unverified_header(id_token)["kid"]]
            claims = jwt.decode(
                id_token,
                key.key,
                algorithms=EID_ALGORITHMS,
                audience=broker.audience,
                issuer=broker.issuer,
                options={
                    "require": ["exp", "iat", "iss", "aud", "sub", "nonce"],
                    "verify_iat": False,
                },
                leeway=dt.timedelta(seconds=30),
            )
            if now.timestamp() >= float(claims["exp"]) + 30:
                raise jwt.ExpiredSignatureError("expired at the service's time")
        except (jwt.PyJWTError, KeyError) as exc:
            log.info("eID assertion refused", extra={"reason": type(exc).__name__})
            raise AuthenticationFailed("eID assertion refused") from None
        level = broker.acr_levels.get(str(claims.get("acr", "")))
        if not hmac.compare_digest(str(claims["nonce"]), nonce) or level is None:
            log.info("eID assertion refused", extra={"reason": "nonce or acr"})
            raise AuthenticationFailed("eID assertion refused")
        try:
            with self._sessions.begin() as db:
                if db.get(models.Party, party_id) is None:
                    raise NotFound("no such party")
                db.add(models.UsedNonce(issuer=broker.issuer, nonce=nonce, use_time=now))
                db.flush()
                record = models.IdentityRecord(
                    id=uuid.uuid4(),
                    party_id=party_id,
                    method=ProofingMethod.EID_ASSERTION,
                    level=level,
                    proof_time=now,
                    expire_time=now + self._policy.proof_validity,
                    evidence_summary=f"eID {broker.issuer} acr {claims.get('acr')}",
                    details={
                        "issuer": broker.issuer,
                        "sub": str(claims["sub"]),
                        "acr": str(claims.get("acr")),
                    },
                )
                db.add(record)
        except IntegrityError:
            log.info("eID assertion refused", extra={"reason": "nonce replayed"})
            raise AuthenticationFailed("eID assertion refused") from None
        return record

    # -- means of authentication ---------------------------------------------

    def _credential(
        self, db: DbSession, party_id: uuid.UUID, lock: bool = False
    ) -> models.Credential:
        if db.get(models.Party, party_id) is None:
            raise NotFound("no such party")
        if self._level(db, party_id) is None:
            # R53-1: means of authentication come after a first identification.
            raise FailedPrecondition("the party's identity has not been proofed")
        query = select(models.Credential).where(models.Credential.party_id == party_id)
        credential = db.scalar(query.with_for_update() if lock else query)
        if credential is None:
            credential = models.Credential(party_id=party_id, failed_attempts=0)
            db.add(credential)
        return credential

    def set_password(self, party_id: uuid.UUID, password: str) -> None:
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise InvalidArgument(
                "password", f"must have {MIN_PASSWORD} to {MAX_PASSWORD} characters"
            )
        salt = os.urandom(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
        with self._sessions.begin() as db:
            credential = self._credential(db, party_id)
            credential.password_hash = (
                f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"
            )

    def enroll_totp(self, party_id: uuid.UUID) -> str:
        """A new TOTP secret (RFC 6238, 30 s, 6 digits); its otpauth URI is shown once."""
        secret = pyotp.random_base32()
        encrypted = at_rest.encrypt(self._policy.secrets_key, secret.encode(), party_id.bytes)
        with self._sessions.begin() as db:
            credential = self._credential(db, party_id)
            credential.totp_secret = encrypted
            credential.totp_last_step = None
        return pyotp.TOTP(secret).provisioning_uri(
            name=f"parties/{party_id}", issuer_name=TOTP_ISSUER
        )

    def _totp(self, credential: models.Credential) -> pyotp.TOTP | None:
        if credential.totp_secret is None:
            return None
        secret = at_rest.decrypt(
            self._policy.secrets_key, credential.totp_secret, credential.party_id.bytes
        )
        return pyotp.TOTP(secret.decode())

    def send_email_code(self, party_id: uuid.UUID) -> tuple[uuid.UUID, dt.datetime]:
        """A one-time code to the party's e-mail address, through the outbox (in
        this transaction); it replaces any code outstanding. Returns its id and
        expiry. The code is kept only as an HMAC, and encrypted in the outbox
        until sent."""
        now = self._clock()
        with self._sessions.begin() as db:
            credential = self._credential(db, party_id, lock=True)
            if credential.password_hash is None:
                raise FailedPrecondition("set a password first: the code goes with it")
            if credential.locked_until is not None and credential.locked_until > now:
                raise TooManyAttempts("too many failed attempts; try again later")
            sent = credential.email_code_sent_time
            if sent is not None and now < sent + EMAIL_CODE_INTERVAL:
                raise TooManyAttempts("a code was sent less than a minute ago")
            code_id, code = uuid.uuid4(), f"{secrets.randbelow(10**6):06d}"
            expire_time = now + EMAIL_CODE_TTL
            credential.email_code_id = code_id
            credential.email_code_hmac = self._email_code_hmac(code_id, code)
            credential.email_code_sent_time = now
            credential.email_code_expire_time = expire_time
            encrypted = at_rest.encrypt(self._policy.secrets_key, code.encode(), code_id.bytes)
            payload = {
                "party": str(party_id),
                "code_id": str(code_id),
                "code": encrypted.hex(),
                "expire_time": expire_time.isoformat(),
            }
            db.execute(
                insert(models.OutboxMessage.__table__),  # type: ignore[arg-type]
                [models.outbox_row(None, "email_code", payload, now, now)],
            )
        return code_id, expire_time

    def create_session(
        self,
        party_id: uuid.UUID,
        password: str,
        totp_code: str = "",
        email_code: tuple[uuid.UUID, str] | None = None,
    ) -> IssuedSession:
        """Password (knowledge) and a one-time code, from the TOTP device or
        e-mailed (possession, one-time): a session bound to the party's current
        level. Failures count towards a lockout; a code is good once."""
        now = self._clock()
        failure: Exception | None = None
        with self._sessions.begin() as db:
            try:
                credential = self._credential(db, party_id, lock=True)
            except (NotFound, FailedPrecondition):
                AUTH_FAILURES.inc()
                raise AuthenticationFailed("authentication failed") from None
            if credential.locked_until is not None and credential.locked_until > now:
                raise TooManyAttempts("too many failed attempts; try again later")
            step = None if email_code else self._totp_step(credential, totp_code, now)
            one_time_ok = (
                self._email_code_ok(credential, *email_code, now)
                if email_code
                else step is not None
            )
            if not (self._password_ok(credential, password) and one_time_ok):
                AUTH_FAILURES.inc()
                credential.failed_attempts += 1
                if credential.failed_attempts >= self._policy.lockout_threshold:
                    credential.failed_attempts = 0
                    credential.locked_until = now + self._policy.lockout
                    LOCKOUTS.inc()
                    failure = TooManyAttempts("too many failed attempts; try again later")
                else:
                    failure = AuthenticationFailed("authentication failed")
            else:
                credential.failed_attempts = 0
                credential.locked_until = None
                if email_code:
                    credential.email_code_id = credential.email_code_hmac = None
                    credential.email_code_expire_time = None
                else:
                    credential.totp_last_step = step
                level = self._level(db, party_id)
                assert level is not None  # _credential checked it
                token = secrets.token_urlsafe(32)
                record = models.AuthSession(
                    id=uuid.uuid4(),
                    party_id=party_id,
                    token_hash=hashlib.sha256(token.encode()).digest(),
                    level=level,
                    factors=[FactorCategory.KNOWLEDGE.value, FactorCategory.POSSESSION.value],
                    one_time_element=True,
                    authenticated_at=now,
                    expire_time=now + self._policy.session_ttl,
                )
                db.add(record)
        # The failure is raised after the commit, so that it counts.
        if failure is not None:
            raise failure
        return IssuedSession(token, record)

    @staticmethod
    def _password_ok(credential: models.Credential, password: str) -> bool:
        if credential.password_hash is None:
            return False
        _, n, r, p, salt, expected = credential.password_hash.split("$")
        digest = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
        return hmac.compare_digest(digest.hex(), expected)

    def _totp_step(self, credential: models.Credential, code: str, now: dt.datetime) -> int | None:
        """The TOTP time step that ``code`` matches, if not used before."""
        totp = self._totp(credential)
        matched = None
        if totp is not None and code.isdigit() and len(code) == 6:
            current = totp.timecode(now)
            for step in (current - 1, current, current + 1):  # one step of clock drift
                if hmac.compare_digest(totp.generate_otp(step), code):
                    matched = step
        if (
            matched is not None
            and credential.totp_last_step is not None
            and matched <= credential.totp_last_step
        ):
            matched = None  # a code is good once
        return matched

    def _email_code_hmac(self, code_id: uuid.UUID, code: str) -> bytes:
        return hmac.digest(
            self._policy.secrets_key.current, code_id.bytes + code.encode(), "sha256"
        )

    def _email_code_ok(
        self, credential: models.Credential, code_id: uuid.UUID, code: str, now: dt.datetime
    ) -> bool:
        return (
            credential.email_code_id == code_id
            and credential.email_code_hmac is not None
            and credential.email_code_expire_time is not None
            and now < credential.email_code_expire_time
            and hmac.compare_digest(
                credential.email_code_hmac, self._email_code_hmac(code_id, code)
            )
        )

    def authenticate(self, token: str) -> identity.Session:
        """The session behind a bearer token, as the domain sees it."""
        now = self._clock()
        s = models.AuthSession
        with reader(self._engine) as connection:
            record = connection.execute(
                select(
                    s.party_id,
                    s.level,
                    s.factors,
                    s.one_time_element,
                    s.authenticated_at,
                    s.expire_time,
                    s.revoke_time,
                ).where(s.token_hash == hashlib.sha256(token.encode()).digest())
            ).first()
            if record is None or record.revoke_time is not None or record.expire_time <= now:
                raise AuthenticationFailed("invalid or expired session")
            return identity.Session(
                party_id=str(record.party_id),
                level=record.level,
                factors=frozenset(FactorCategory(f) for f in record.factors),
                one_time_element=record.one_time_element,
                authenticated_at=record.authenticated_at,
                expires_at=record.expire_time,
            )

    def revoke_session(self, token: str) -> None:
        with self._sessions.begin() as db:
            record = db.scalar(
                select(models.AuthSession).where(
                    models.AuthSession.token_hash == hashlib.sha256(token.encode()).digest()
                )
            )
            if record is None:
                raise AuthenticationFailed("invalid or expired session")
            if record.revoke_time is None:
                record.revoke_time = self._clock()

    # -- consent ------------------------------------------------------------

    def grant_consent(
        self, request_id: str, recipient_id: uuid.UUID, sender_id: uuid.UUID, method: str
    ) -> models.Consent:
        if not request_id or len(request_id) > 128:
            raise InvalidArgument("request_id", "required, at most 128 characters")
        if not method or len(method) > 64:
            raise InvalidArgument(
                "method", "required: how the consent was given, at most 64 characters"
            )
        if recipient_id == sender_id:
            raise InvalidArgument("sender", "must differ from the recipient")

        def create(db: DbSession) -> models.Consent:
            for party, field in ((recipient_id, "recipient"), (sender_id, "sender")):
                if db.get(models.Party, party) is None:
                    raise NotFound(f"no such party ({field})")
            active = self._active_consent(db, recipient_id, sender_id)
            if active is not None:
                return active
            consent = models.Consent(
                id=uuid.uuid4(),
                recipient_id=recipient_id,
                sender_id=sender_id,
                method=method,
                grant_time=self._clock(),
                request_id=request_id,
            )
            db.add(consent)
            return consent

        return self._idempotent(models.Consent, request_id, create)

    @staticmethod
    def _active_consent(
        db: DbSession, recipient_id: uuid.UUID, sender_id: uuid.UUID
    ) -> models.Consent | None:
        return db.scalar(
            select(models.Consent).where(
                models.Consent.recipient_id == recipient_id,
                models.Consent.sender_id == sender_id,
                models.Consent.withdraw_time.is_(None),
            )
        )

    def withdraw_consent(self, consent_id: uuid.UUID) -> models.Consent:
        with self._sessions.begin() as db:
            consent = db.get(models.Consent, consent_id)
            if consent is None:
                raise NotFound("no such consent")
            if consent.withdraw_time is None:
                consent.withdraw_time = self._clock()
        return consent

    def list_consents(
        self, recipient_id: uuid.UUID, page_size: int, page_token: str
    ) -> tuple[list[models.Consent], str]:
        with self._sessions() as db:
            query = (
                select(models.Consent)
                .where(models.Consent.recipient_id == recipient_id)
                .order_by(models.Consent.grant_time, models.Consent.id)
            )
            return paged(db, query, page_size, page_token)

    def has_consent(self, recipient_id: uuid.UUID, sender_id: uuid.UUID) -> bool:
        with self._sessions() as db:
            return self.has_consent_in(db, recipient_id, sender_id)

    def has_consent_in(self, db: DbSession, recipient_id: uuid.UUID, sender_id: uuid.UUID) -> bool:
        """Inside the caller's transaction, as a deposit needs it."""
        return self._active_consent(db, recipient_id, sender_id) is not None
