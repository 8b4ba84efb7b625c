"""Means of authentication (R53-1, after a first identification): a password
(knowledge), a TOTP device or an e-mailed one-time code (possession, dynamic),
and the lockout that repeated failures earn."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import secrets
import uuid

import pyotp
from prometheus_client import Counter
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from lre.server.adapters import at_rest
from lre.server.clock import utcnow
from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TooManyAttempts,
)
from lre.server.domain.identity import AssuranceLevel
from lre.server.domain.letters import OutboxKind
from lre.server.services.identity.settings import Clock, IdentityPolicy
from lre.server.storage.credentials import Credential, CredentialRepository, SessionRepository
from lre.server.storage.parties import PartyRepository
from lre.server.storage.proofing import ProofingRepository

LOCKOUTS = Counter(
    "lre_identity_lockouts", "Parties locked out after repeated authentication failures."
)
AUTH_FAILURES = Counter("lre_identity_authentication_failures", "Failed session creations.")

MIN_PASSWORD = 12
MAX_PASSWORD = 256
TOTP_ISSUER = "LRE"
EMAIL_CODE_TTL = dt.timedelta(minutes=10)
# A party gets at most one code a minute: its mailbox is not ours to flood.
EMAIL_CODE_INTERVAL = dt.timedelta(minutes=1)
# scrypt parameters (RFC 7914): 16 MiB, ~50 ms here.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
LOCKED = "too many failed attempts; try again later"
# Long enough for a letter-box check the next day, short enough to go stale.
ENROLMENT_CODE_TTL = dt.timedelta(hours=24)
# 12 characters of an unambiguous alphabet: 60 bits, and failures lock out.
ENROLMENT_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def proofed_level(db: DbSession, party_id: uuid.UUID, now: dt.datetime) -> AssuranceLevel:
    """The party's level; means of authentication come only after a first
    identification (R53-1)."""
    if not PartyRepository(db).exists(party_id):
        raise NotFound("no such party")
    level = ProofingRepository(db).level(party_id, now)
    if level is None:
        raise FailedPrecondition("the party's identity has not been proofed")
    return level


def _hashed(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidArgument("password", f"must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def _password_ok(credential: Credential, password: str) -> bool:
    if credential.password_hash is None:
        return False
    _, n, r, p, salt, expected = credential.password_hash.split("$")
    digest = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(digest.hex(), expected)


def _normalised_code(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


class CredentialService:
    def __init__(
        self, sessions: sessionmaker[DbSession], policy: IdentityPolicy, clock: Clock = utcnow
    ) -> None:
        self._sessions = sessions
        self._policy = policy
        self._clock = clock

    def send_enrolment_code(self, db: DbSession, party_id: uuid.UUID, now: dt.datetime) -> None:
        """After a proofing, in its transaction: a one-time code to the party's
        e-mail address (through the outbox, never to the caller) with which
        the party sets its first means of authentication, or replaces them.
        It replaces any enrolment code outstanding."""
        code = "".join(secrets.choice(ENROLMENT_ALPHABET) for _ in range(12))
        expire_time = now + ENROLMENT_CODE_TTL
        credentials = CredentialRepository(db)
        credentials.save(
            dataclasses.replace(
                credentials.get(party_id, lock=True),
                enrolment_code_hmac=self._enrolment_code_hmac(party_id, code),
                enrolment_code_expire_time=expire_time,
            )
        )
        mail_id = uuid.uuid4()  # binds the encrypted code to its message
        encrypted = at_rest.encrypt(
            self._policy.secrets_key,
            "-".join([code[:4], code[4:8], code[8:]]).encode(),
            mail_id.bytes,
        )
        payload = {
            "party": str(party_id),
            "purpose": "enrolment",
            "code_id": str(mail_id),
            "code": encrypted.hex(),
            "expire_time": expire_time.isoformat(),
        }
        credentials.enqueue_mail(OutboxKind.EMAIL_CODE, payload, now)

    def enroll(self, party_id: uuid.UUID, enrolment_code: str, password: str) -> str:
        """The party's first password and TOTP device (or both replaced, after
        a fresh proofing), against the enrolment code e-mailed to it; the code
        is spent, a wrong one counts towards the lockout, and sessions opened
        with the old factors are revoked. Returns the otpauth URI, shown once."""
        password_hash = _hashed(password)
        secret = pyotp.random_base32()
        now = self._clock()
        failure: Exception | None = None
        with self._sessions.begin() as db:
            try:
                proofed_level(db, party_id, now)
            except (NotFound, FailedPrecondition):
                raise AuthenticationFailed("enrolment refused") from None
            credentials = CredentialRepository(db)
            credential = credentials.get(party_id, lock=True)
            if credential.locked(now):
                raise TooManyAttempts(LOCKED)
            expected = credential.enrolment_code_hmac
            if (
                expected is None
                or credential.enrolment_code_expire_time is None
                or now >= credential.enrolment_code_expire_time
                or not hmac.compare_digest(
                    expected,
                    self._enrolment_code_hmac(party_id, _normalised_code(enrolment_code)),
                )
            ):
                failure = self._failed(credentials, credential, now, "enrolment refused")
            else:
                credentials.save(
                    dataclasses.replace(
                        credential,
                        password_hash=password_hash,
                        totp_secret=at_rest.encrypt(
                            self._policy.secrets_key, secret.encode(), party_id.bytes
                        ),
                        totp_last_step=None,
                        failed_attempts=0,
                        locked_until=None,
                        email_code_id=None,
                        email_code_hmac=None,
                        email_code_expire_time=None,
                        enrolment_code_hmac=None,
                        enrolment_code_expire_time=None,
                    )
                )
                SessionRepository(db).revoke_all(party_id, now)
        if failure is not None:
            raise failure
        return pyotp.TOTP(secret).provisioning_uri(
            name=f"parties/{party_id}", issuer_name=TOTP_ISSUER
        )

    def set_password(self, party_id: uuid.UUID, password: str) -> None:
        """A new password (the caller checked the party's own session)."""
        password_hash = _hashed(password)
        with self._sessions.begin() as db:
            proofed_level(db, party_id, self._clock())
            credentials = CredentialRepository(db)
            credentials.save(
                dataclasses.replace(
                    credentials.get(party_id, lock=True), password_hash=password_hash
                )
            )

    def enroll_totp(self, party_id: uuid.UUID) -> str:
        """A new TOTP secret (RFC 6238, 30 s, 6 digits) replacing the last (the
        caller checked the party's own session); its otpauth URI is shown once."""
        secret = pyotp.random_base32()
        encrypted = at_rest.encrypt(self._policy.secrets_key, secret.encode(), party_id.bytes)
        with self._sessions.begin() as db:
            proofed_level(db, party_id, self._clock())
            credentials = CredentialRepository(db)
            credentials.save(
                dataclasses.replace(
                    credentials.get(party_id, lock=True),
                    totp_secret=encrypted,
                    totp_last_step=None,
                )
            )
        return pyotp.TOTP(secret).provisioning_uri(
            name=f"parties/{party_id}", issuer_name=TOTP_ISSUER
        )

    def send_email_code(
        self, party_id: uuid.UUID, password: str | None
    ) -> tuple[uuid.UUID, dt.datetime]:
        """A one-time code to the party's e-mail address, through the outbox (in
        this transaction); it replaces any code outstanding. Returns its id and
        expiry. The code is kept only as an HMAC, and encrypted in the outbox
        until sent. ``password`` is the party's (a wrong one counts towards the
        lockout), or None when the caller checked the party's own session."""
        now = self._clock()
        failure: Exception | None = None
        with self._sessions.begin() as db:
            try:
                proofed_level(db, party_id, now)
            except (NotFound, FailedPrecondition):
                if password is None:
                    raise
                raise AuthenticationFailed("authentication failed") from None
            credentials = CredentialRepository(db)
            credential = credentials.get(party_id, lock=True)
            if credential.password_hash is None:
                raise FailedPrecondition("set a password first: the code goes with it")
            if credential.locked(now):
                raise TooManyAttempts(LOCKED)
            if password is not None and not _password_ok(credential, password):
                failure = self._failed(credentials, credential, now, "authentication failed")
            else:
                code_id, expire_time = self._email_code(credentials, credential, now)
        if failure is not None:
            raise failure
        return code_id, expire_time

    def verify(
        self,
        db: DbSession,
        party_id: uuid.UUID,
        password: str,
        totp_code: str,
        email_code: tuple[uuid.UUID, str] | None,
        now: dt.datetime,
    ) -> tuple[AssuranceLevel | None, Exception | None]:
        """Checks the password and a one-time code inside the caller's
        transaction: (the party's level, None) when they match, the one-time
        code spent; (None, the error to raise after commit) when they do not,
        the failure counted towards a lockout."""
        try:
            level = proofed_level(db, party_id, now)
        except (NotFound, FailedPrecondition):
            AUTH_FAILURES.inc()
            raise AuthenticationFailed("authentication failed") from None
        credentials = CredentialRepository(db)
        credential = credentials.get(party_id, lock=True)
        if credential.locked(now):
            raise TooManyAttempts(LOCKED)
        step = None if email_code else self._totp_step(credential, totp_code, now)
        one_time_ok = (
            self._email_code_ok(credential, *email_code, now) if email_code else step is not None
        )
        if not (_password_ok(credential, password) and one_time_ok):
            return None, self._failed(credentials, credential, now, "authentication failed")
        spent = (
            {"email_code_id": None, "email_code_hmac": None, "email_code_expire_time": None}
            if email_code
            else {"totp_last_step": step}
        )
        credentials.save(
            dataclasses.replace(credential, failed_attempts=0, locked_until=None, **spent)
        )
        return level, None

    def _email_code(
        self, credentials: CredentialRepository, credential: Credential, now: dt.datetime
    ) -> tuple[uuid.UUID, dt.datetime]:
        sent = credential.email_code_sent_time
        if sent is not None and now < sent + EMAIL_CODE_INTERVAL:
            raise TooManyAttempts("a code was sent less than a minute ago")
        code_id, code = uuid.uuid4(), f"{secrets.randbelow(10**6):06d}"
        expire_time = now + EMAIL_CODE_TTL
        credentials.save(
            dataclasses.replace(
                credential,
                email_code_id=code_id,
                email_code_hmac=self._email_code_hmac(code_id, code),
                email_code_sent_time=now,
                email_code_expire_time=expire_time,
            )
        )
        encrypted = at_rest.encrypt(self._policy.secrets_key, code.encode(), code_id.bytes)
        payload = {
            "party": str(credential.party_id),
            "code_id": str(code_id),
            "code": encrypted.hex(),
            "expire_time": expire_time.isoformat(),
        }
        credentials.enqueue_mail(OutboxKind.EMAIL_CODE, payload, now)
        return code_id, expire_time

    def _failed(
        self,
        credentials: CredentialRepository,
        credential: Credential,
        now: dt.datetime,
        message: str,
    ) -> Exception:
        """Counts a failure (a lockout at the threshold); the error to raise
        once the transaction has committed, so that the count stays."""
        AUTH_FAILURES.inc()
        failed = credential.failed_attempts + 1
        if failed >= self._policy.lockout_threshold:
            LOCKOUTS.inc()
            credentials.save(
                dataclasses.replace(
                    credential, failed_attempts=0, locked_until=now + self._policy.lockout
                )
            )
            return TooManyAttempts(LOCKED)
        credentials.save(dataclasses.replace(credential, failed_attempts=failed))
        return AuthenticationFailed(message)

    def _enrolment_code_hmac(self, party_id: uuid.UUID, code: str) -> bytes:
        return hmac.digest(
            self._policy.secrets_key.current,
            b"enrolment" + party_id.bytes + code.encode(),
            "sha256",
        )

    def _totp_step(self, credential: Credential, code: str, now: dt.datetime) -> int | None:
        """The TOTP time step that ``code`` matches, if not used before."""
        if credential.totp_secret is None:
            return None
        secret = at_rest.decrypt(
            self._policy.secrets_key, credential.totp_secret, credential.party_id.bytes
        )
        totp = pyotp.TOTP(secret.decode())
        matched = None
        if code.isdigit() and len(code) == 6:
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
        self, credential: Credential, code_id: uuid.UUID, code: str, now: dt.datetime
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
