"""The factors themselves, whatever they are used for: a password as an
scrypt hash (knowledge), a TOTP code matched against the party's encrypted
seed, and the one-time codes (e-mailed or for enrolment) kept only as HMACs
under the secrets key (possession)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import uuid

import pyotp

from lre.server.adapters import at_rest
from lre.server.domain.errors import InvalidArgument
from lre.server.domain.identity import Credential
from lre.server.domain.letters import OutboxKind
from lre.server.storage.outbox import new_message
from lre.server.storage.store import Store

MIN_PASSWORD = 12
MAX_PASSWORD = 256
# scrypt parameters (RFC 7914): 16 MiB, ~50 ms here.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
# 12 characters of an unambiguous alphabet: 60 bits, and failures lock out.
ENROLMENT_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def hashed(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidArgument("password", f"must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    # Length is the rule (NIST SP 800-63B), but not length of nothing: twelve
    # spaces, or one character repeated, is no secret.
    if len(set(password.strip())) < 4:
        raise InvalidArgument("password", "must not be blank or a few characters repeated")
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def password_ok(credential: Credential, password: str) -> bool:
    if credential.password_hash is None:
        return False
    _, n, r, p, salt, expected = credential.password_hash.split("$")
    digest = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(digest.hex(), expected)


def new_enrolment_code() -> str:
    return "".join(secrets.choice(ENROLMENT_ALPHABET) for _ in range(12))


def normalised_code(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


def enrolment_code_hmac(keys: at_rest.SecretsKeys, party_id: uuid.UUID, code: str) -> bytes:
    return hmac.digest(keys.current, b"enrolment" + party_id.bytes + code.encode(), "sha256")


def email_code_hmac(keys: at_rest.SecretsKeys, code_id: uuid.UUID, code: str) -> bytes:
    return hmac.digest(keys.current, code_id.bytes + code.encode(), "sha256")


def email_code_ok(
    keys: at_rest.SecretsKeys,
    credential: Credential,
    code_id: uuid.UUID,
    code: str,
    now: dt.datetime,
) -> bool:
    return (
        credential.email_code_id == code_id
        and credential.email_code_hmac is not None
        and credential.email_code_expire_time is not None
        and now < credential.email_code_expire_time
        and hmac.compare_digest(credential.email_code_hmac, email_code_hmac(keys, code_id, code))
    )


def totp_step(
    keys: at_rest.SecretsKeys, credential: Credential, code: str, now: dt.datetime
) -> int | None:
    """The TOTP time step that ``code`` matches, if not used before."""
    if credential.totp_secret is None:
        return None
    secret = at_rest.decrypt(keys, credential.totp_secret, credential.party_id.bytes)
    totp = pyotp.TOTP(secret.decode())
    matched = None
    if code.isascii() and code.isdigit() and len(code) == 6:  # not fullwidth or other digits
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


def queue_email_code(
    store: Store,
    secrets_key: at_rest.SecretsKeys,
    party_id: uuid.UUID,
    code: tuple[uuid.UUID, str],
    expire_time: dt.datetime,
    now: dt.datetime,
    purpose: str | None = None,
) -> None:
    """The outbox message that e-mails a one-time ``code`` (its id, its
    digits) to the party: the digits encrypted until they are sent."""
    code_id, digits = code
    encrypted = at_rest.encrypt(secrets_key, digits.encode(), code_id.bytes)
    payload = {
        "party": str(party_id),
        **({"purpose": purpose} if purpose else {}),
        "code_id": str(code_id),
        "code": encrypted.hex(),
        "expire_time": expire_time.isoformat(),
    }
    store.outbox.add([new_message(None, OutboxKind.EMAIL_CODE, payload, now, now)])
