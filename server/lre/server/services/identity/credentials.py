"""Means of authentication (R53-1, after a first identification): a password
(knowledge), a TOTP device or an e-mailed one-time code (possession, dynamic),
and the lockout that repeated failures earn (of a source, or of a whole
caller: lre.server.services.identity.throttles)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import secrets
import uuid

import pyotp
from prometheus_client import Counter

from lre.server.adapters import at_rest
from lre.server.clock import utcnow
from lre.server.domain.errors import (
    AuthenticationFailed,
    FailedPrecondition,
    NotFound,
    TooManyAttempts,
)
from lre.server.domain.identity import (
    NO_SOURCE,
    AssuranceLevel,
    Credential,
    IdentityRecord,
    Source,
)
from lre.server.domain.letters import OutboxKind
from lre.server.domain.log import LogKind
from lre.server.services.identity import factors, throttles
from lre.server.services.identity.parties import journaled, proofed_level
from lre.server.services.identity.settings import Clock, IdentityPolicy
from lre.server.storage.outbox import new_message
from lre.server.storage.store import Store, Stores

LOCKOUTS = Counter(
    "lre_identity_lockouts", "Parties locked out after repeated authentication failures."
)
AUTH_FAILURES = Counter("lre_identity_authentication_failures", "Failed session creations.")
UNKNOWN_PARTY = Counter(
    "lre_identity_unknown_party_attempts",
    "Authentications naming no party: counted, never journaled (the log is permanent).",
)

TOTP_ISSUER = "LRE"
EMAIL_CODE_TTL = dt.timedelta(minutes=10)
# A party gets at most one code a minute: its mailbox is not ours to flood.
EMAIL_CODE_INTERVAL = dt.timedelta(minutes=1)
LOCKED = "too many failed attempts from this caller; retry later"
# Long enough for a letter-box check the next day, short enough to go stale.
ENROLMENT_CODE_TTL = dt.timedelta(hours=24)


class CredentialService:
    def __init__(self, stores: Stores, policy: IdentityPolicy, clock: Clock = utcnow) -> None:
        self._stores = stores
        self._policy = policy
        self._clock = clock

    def send_enrolment_code(self, store: Store, proofing: IdentityRecord, now: dt.datetime) -> None:
        """After a proofing, in its transaction: a one-time code to the party's
        e-mail address (through the outbox, never to the caller) with which
        the party sets its first means of authentication, or replaces them.
        It replaces any enrolment code outstanding. A proofing below the
        party's current level issues none: factors it re-issued would open
        sessions at that higher level (R53-1, eIDAS 24(1))."""
        party_id = proofing.party_id
        if (store.proofing.level(party_id, now) or proofing.level) > proofing.level:
            return
        code = factors.new_enrolment_code()
        expire_time = now + ENROLMENT_CODE_TTL
        credentials = store.credentials
        credentials.save(
            dataclasses.replace(
                credentials.get(party_id, lock=True),
                enrolment_code_hmac=factors.enrolment_code_hmac(
                    self._policy.secrets_key, party_id, code
                ),
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
        store.outbox.add([new_message(None, OutboxKind.EMAIL_CODE, payload, now, now)])
        journaled(store, LogKind.ENROLMENT_CODE_ISSUED, party_id, now, expireTime=expire_time)

    def enroll(
        self, party_id: uuid.UUID, enrolment_code: str, password: str, source: Source = NO_SOURCE
    ) -> str:
        """The party's first password and TOTP device (or both replaced, after
        a fresh proofing), against the enrolment code e-mailed to it; the code
        is spent, a wrong one counts towards the lockout, and sessions opened
        with the old factors are revoked. Returns the otpauth URI, shown once."""
        password_hash = factors.hashed(password)
        secret = pyotp.random_base32()
        now = self._clock()
        failure: Exception | None = None
        with self._stores.begin() as store:
            credentials = store.credentials
            refused = self._refusal(store, party_id, now, "enrolment", "enrolment refused", source)
            credential = credentials.get(party_id, lock=True)
            expected = credential.enrolment_code_hmac
            if refused is not None:
                failure = refused
            elif (
                expected is None
                or credential.enrolment_code_expire_time is None
                or now >= credential.enrolment_code_expire_time
                or not hmac.compare_digest(
                    expected,
                    factors.enrolment_code_hmac(
                        self._policy.secrets_key, party_id, factors.normalised_code(enrolment_code)
                    ),
                )
            ):
                failure = self._failed(
                    store, credential, now, "enrolment", "enrolment refused", source
                )
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
                store.sessions.revoke_all(party_id, now)
                throttles.cleared(store, party_id, source)
                # The enrolment code is spent and every session revoked with it.
                journaled(
                    store, LogKind.CREDENTIALS_ENROLLED, party_id, now, factors="password,totp"
                )
        if failure is not None:
            raise failure
        return pyotp.TOTP(secret).provisioning_uri(
            name=f"parties/{party_id}", issuer_name=TOTP_ISSUER
        )

    def set_password(self, party_id: uuid.UUID, password: str) -> None:
        """A new password (the caller checked the party's own session)."""
        password_hash = factors.hashed(password)
        now = self._clock()
        with self._stores.begin() as store:
            proofed_level(store, party_id, now)
            credentials = store.credentials
            credentials.save(
                dataclasses.replace(
                    credentials.get(party_id, lock=True), password_hash=password_hash
                )
            )
            journaled(store, LogKind.PASSWORD_SET, party_id, now)

    def enroll_totp(self, party_id: uuid.UUID) -> str:
        """A new TOTP secret (RFC 6238, 30 s, 6 digits) replacing the last (the
        caller checked the party's own session); its otpauth URI is shown once."""
        secret = pyotp.random_base32()
        encrypted = at_rest.encrypt(self._policy.secrets_key, secret.encode(), party_id.bytes)
        now = self._clock()
        with self._stores.begin() as store:
            proofed_level(store, party_id, now)
            credentials = store.credentials
            credentials.save(
                dataclasses.replace(
                    credentials.get(party_id, lock=True),
                    totp_secret=encrypted,
                    totp_last_step=None,
                )
            )
            journaled(store, LogKind.TOTP_ENROLLED, party_id, now)
        return pyotp.TOTP(secret).provisioning_uri(
            name=f"parties/{party_id}", issuer_name=TOTP_ISSUER
        )

    def send_email_code(
        self, party_id: uuid.UUID, password: str | None, source: Source = NO_SOURCE
    ) -> tuple[uuid.UUID, dt.datetime]:
        """A one-time code to the party's e-mail address, through the outbox (in
        this transaction); it replaces any code outstanding. Returns its id and
        expiry. The code is kept only as an HMAC, and encrypted in the outbox
        until sent. ``password`` is the party's (a wrong one counts towards the
        lockout), or None when the caller checked the party's own session."""
        now = self._clock()
        failure: Exception | None = None
        with self._stores.begin() as store:
            if password is None:
                proofed_level(store, party_id, now)  # the party's own session: no failure to count
            credentials = store.credentials
            failure = self._refusal(
                store, party_id, now, "email_code", "authentication failed", source
            )
            credential = credentials.get(party_id, lock=True)
            if failure is None:
                if credential.password_hash is None and password is None:
                    raise FailedPrecondition("set a password first: the code goes with it")
                # Without a session, a party with no password yet answers as a
                # wrong password does: no caller learns that it is not enrolled.
                if password is not None and not factors.password_ok(credential, password):
                    failure = self._failed(
                        store, credential, now, "email_code", "authentication failed", source
                    )
                else:
                    code_id, expire_time = self._email_code(store, credential, now)
        if failure is not None:
            raise failure
        return code_id, expire_time

    def verify(
        self,
        store: Store,
        party_id: uuid.UUID,
        password: str,
        totp_code: str,
        email_code: tuple[uuid.UUID, str] | None,
        now: dt.datetime,
        source: Source = NO_SOURCE,
    ) -> tuple[AssuranceLevel | None, Exception | None]:
        """Checks the password and a one-time code inside the caller's
        transaction: (the party's level, None) when they match, the one-time
        code spent; (None, the error to raise after commit) when they do not,
        the failure counted towards a lockout."""
        refused = self._refusal(store, party_id, now, "session", "authentication failed", source)
        if refused is not None:
            return None, refused
        level = proofed_level(store, party_id, now)
        credentials = store.credentials
        credential = credentials.get(party_id, lock=True)
        step = (
            None
            if email_code
            else factors.totp_step(self._policy.secrets_key, credential, totp_code, now)
        )
        one_time_ok = (
            factors.email_code_ok(self._policy.secrets_key, credential, *email_code, now)
            if email_code
            else step is not None
        )
        if not (factors.password_ok(credential, password) and one_time_ok):
            failed = self._failed(
                store, credential, now, "session", "authentication failed", source
            )
            return None, failed
        spent = (
            {"email_code_id": None, "email_code_hmac": None, "email_code_expire_time": None}
            if email_code
            else {"totp_last_step": step}
        )
        credentials.save(
            dataclasses.replace(credential, failed_attempts=0, locked_until=None, **spent)
        )
        throttles.cleared(store, party_id, source)
        return level, None

    def _email_code(
        self, store: Store, credential: Credential, now: dt.datetime
    ) -> tuple[uuid.UUID, dt.datetime]:
        credentials = store.credentials
        sent = credential.email_code_sent_time
        if sent is not None and now < sent + EMAIL_CODE_INTERVAL:
            wait = (sent + EMAIL_CODE_INTERVAL - now).total_seconds()
            raise TooManyAttempts("a code was sent less than a minute ago", wait)
        code_id, code = uuid.uuid4(), f"{secrets.randbelow(10**6):06d}"
        expire_time = now + EMAIL_CODE_TTL
        credentials.save(
            dataclasses.replace(
                credential,
                email_code_id=code_id,
                email_code_hmac=factors.email_code_hmac(self._policy.secrets_key, code_id, code),
                email_code_sent_time=now,
                email_code_expire_time=expire_time,
            )
        )
        factors.queue_email_code(
            store, self._policy.secrets_key, credential.party_id, (code_id, code), expire_time, now
        )
        journaled(
            store,
            LogKind.EMAIL_CODE_ISSUED,
            credential.party_id,
            now,
            codeId=str(code_id),
            expireTime=expire_time,
        )
        return code_id, expire_time

    def _refusal(
        self,
        store: Store,
        party_id: uuid.UUID,
        now: dt.datetime,
        purpose: str,
        message: str,
        source: Source,
    ) -> Exception | None:
        """Refused before any secret is compared: no such party, not proofed,
        or ``source`` (or its whole caller) locked out. Journaled in the
        caller's transaction, which must commit (the error is raised after): a
        failed attempt that changes nothing else is still in the journal; one
        naming no party is only counted (lre_identity_unknown_party_attempts_total)."""
        failure: Exception
        try:
            proofed_level(store, party_id, now)
        except NotFound:
            # Anyone can name a party that does not exist, as fast as the rate
            # limit allows: a journal entry each would grow the permanent log
            # (and every export) without bound, for no one's benefit.
            AUTH_FAILURES.inc()
            UNKNOWN_PARTY.inc()
            return AuthenticationFailed(message)
        except FailedPrecondition:
            AUTH_FAILURES.inc()
            reason, failure = "unknown_or_unproofed", AuthenticationFailed(message)
        else:
            # Locked before the check, as every caller then reads them locked:
            # concurrent attempts queue here, and none compares a secret once
            # another has locked this source out.
            credential = store.credentials.get(party_id, lock=True)
            until = throttles.locked_until(store, party_id, source, now)
            if credential.locked(now):  # an operator's lock, or one from before sources
                until = credential.locked_until
            if until is None:
                return None
            reason = "locked_out"
            failure = TooManyAttempts(LOCKED, (until - now).total_seconds())
        journaled(
            store, LogKind.AUTHENTICATION_FAILED, party_id, now, purpose=purpose, reason=reason
        )
        return failure

    def _failed(
        self,
        store: Store,
        credential: Credential,
        now: dt.datetime,
        purpose: str,
        message: str,
        source: Source,
    ) -> Exception:
        """Counts a failure of ``source`` and of its caller (a lockout of the
        source at the threshold, of the caller at its ceiling, each one twice
        as long as the last), journaled; the error to raise once the
        transaction has committed, so that the count stays. Failures are the
        source's and its caller's, never the party's: another party's gateway
        cannot lock the party out of its own portal."""
        AUTH_FAILURES.inc()
        party = credential.party_id
        limits = (self._policy.lockout_threshold, self._policy.lockout)
        failed, earned = throttles.count_failure(store, party, source, now, limits)
        journaled(
            store,
            LogKind.AUTHENTICATION_FAILED,
            party,
            now,
            purpose=purpose,
            reason="wrong_credentials",
            failedAttempts=failed,
        )
        if not earned:
            return AuthenticationFailed(message)
        LOCKOUTS.inc(len(earned))
        throttles.journal_lockouts(store, party, now, earned, purpose)
        return TooManyAttempts(LOCKED, max(e.length for e in earned).total_seconds())
