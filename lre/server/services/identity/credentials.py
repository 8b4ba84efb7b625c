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

from lre.server.clock import utcnow
from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TooManyAttempts,
)
from lre.server.domain.identity import AssuranceLevel
from lre.server.services import at_rest
from lre.server.services.identity.settings import Clock, IdentityPolicy
from lre.server.storage.credentials import Credential, CredentialRepository
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


def proofed_level(db: DbSession, party_id: uuid.UUID, now: dt.datetime) -> AssuranceLevel:
    """The party's level; means of authentication come only after a first
    identification (R53-1)."""
    if not PartyRepository(db).exists(party_id):
        raise NotFound("no such party")
    level = ProofingRepository(db).level(party_id, now)
    if level is None:
        raise FailedPrecondition("the party's identity has not been proofed")
    return level


def _password_ok(credential: Credential, password: str) -> bool:
    if credential.password_hash is None:
        return False
    _, n, r, p, salt, expected = credential.password_hash.split("$")
    digest = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(digest.hex(), expected)


class CredentialService:
    def __init__(
        self, sessions: sessionmaker[DbSession], policy: IdentityPolicy, clock: Clock = utcnow
    ) -> None:
        self._sessions = sessions
        self._policy = policy
        self._clock = clock

    def set_password(self, party_id: uuid.UUID, password: str) -> None:
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise InvalidArgument(
                "password", f"must have {MIN_PASSWORD} to {MAX_PASSWORD} characters"
            )
        salt = os.urandom(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
        with self._sessions.begin() as db:
            proofed_level(db, party_id, self._clock())
            credentials = CredentialRepository(db)
            credentials.save(
                dataclasses.replace(
                    credentials.get(party_id, lock=True),
                    password_hash=f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}",
                )
            )

    def enroll_totp(self, party_id: uuid.UUID) -> str:
        """A new TOTP secret (RFC 6238, 30 s, 6 digits); its otpauth URI is shown once."""
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

    def send_email_code(self, party_id: uuid.UUID) -> tuple[uuid.UUID, dt.datetime]:
        """A one-time code to the party's e-mail address, through the outbox (in
        this transaction); it replaces any code outstanding. Returns its id and
        expiry. The code is kept only as an HMAC, and encrypted in the outbox
        until sent."""
        now = self._clock()
        with self._sessions.begin() as db:
            proofed_level(db, party_id, now)
            credentials = CredentialRepository(db)
            credential = credentials.get(party_id, lock=True)
            if credential.password_hash is None:
                raise FailedPrecondition("set a password first: the code goes with it")
            if credential.locked(now):
                raise TooManyAttempts(LOCKED)
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
                "party": str(party_id),
                "code_id": str(code_id),
                "code": encrypted.hex(),
                "expire_time": expire_time.isoformat(),
            }
            credentials.enqueue_mail("email_code", payload, now)
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
            AUTH_FAILURES.inc()
            failed = credential.failed_attempts + 1
            if failed >= self._policy.lockout_threshold:
                LOCKOUTS.inc()
                credentials.save(
                    dataclasses.replace(
                        credential, failed_attempts=0, locked_until=now + self._policy.lockout
                    )
                )
                return None, TooManyAttempts(LOCKED)
            credentials.save(dataclasses.replace(credential, failed_attempts=failed))
            return None, AuthenticationFailed("authentication failed")
        spent = (
            {"email_code_id": None, "email_code_hmac": None, "email_code_expire_time": None}
            if email_code
            else {"totp_last_step": step}
        )
        credentials.save(
            dataclasses.replace(credential, failed_attempts=0, locked_until=None, **spent)
        )
        return level, None

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
        return hmac.digest(self._policy.secrets_key, code_id.bytes + code.encode(), "sha256")

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
