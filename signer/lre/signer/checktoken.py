"""`lre-signer check-token`: can this HSM, as configured, run the signer?

One line per check, OK or FAIL and why, in the order an SRE would debug:
the module loads, the token is found by label, it offers every mechanism the
signer uses with the right flags, the user PIN logs in, the keys and
certificates are there under their labels, and a real signature and a real
wrap/unwrap work. Digests are computed by the signer, not the token (SoftHSM
offers only raw CKM_ECDSA), so no digest mechanism is needed. Never prints the
PIN; runs beside a serving signer (its own session).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import pkcs11
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID
from pkcs11 import Mechanism, MechanismFlag, ObjectClass

from lre.signer.app import load_ca_chain, wrap_keys
from lre.signer.config import SignerSettings
from lre.signer.errors import SignerError, UnwrapFailed
from lre.signer.token import Token
from lre.signer.wrapping import KeyWrapper, WrapKeys, WrapMechanism

# What the signer asks of the token (signer/lre/signer/token.py), and what for.
_WRAPPING = "wrapping content keys"
WRAP_MECHANISMS = {
    WrapMechanism.AES_GCM: (
        Mechanism.AES_GCM,
        MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
        _WRAPPING,
    ),
    WrapMechanism.AES_KW: (
        Mechanism.AES_KEY_WRAP,
        MechanismFlag.WRAP | MechanismFlag.UNWRAP,
        _WRAPPING,
    ),
    WrapMechanism.AES_KW_ECB: (
        Mechanism.AES_ECB,
        MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
        _WRAPPING,
    ),
}


def mechanisms(wrap: WrapMechanism) -> tuple[tuple[Mechanism, MechanismFlag, str], ...]:
    return (
        (Mechanism.ECDSA, MechanismFlag.SIGN, "seal and timestamp signatures"),
        WRAP_MECHANISMS[wrap],
        (Mechanism.EC_KEY_PAIR_GEN, MechanismFlag.GENERATE_KEY_PAIR, "create-key --kind ec-p256"),
        (Mechanism.AES_KEY_GEN, MechanismFlag.GENERATE, "create-key --kind aes-256"),
    )


_TEST_CONTEXT = b"lre-signer check-token"


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    why: str

    def __str__(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'}  {self.what}: {self.why}"


def check_token(settings: SignerSettings, now: Callable[[], dt.datetime]) -> Iterator[Check]:
    """The checks, in order; stops where nothing after could run."""
    module = settings.pkcs11_module
    if not module.exists():
        yield Check(False, "module", f"{module} does not exist")
        return
    try:
        lib = pkcs11.lib(str(module))
    except (pkcs11.PKCS11Error, OSError, RuntimeError) as exc:
        yield Check(False, "module", f"{module} does not load: {exc or type(exc).__name__}")
        return
    version = ".".join(map(str, lib.library_version))
    yield Check(
        True,
        "module",
        f"{module} loaded ({lib.manufacturer_id.strip()}, {lib.library_description.strip()} "
        f"{version})",
    )

    label = settings.token_label
    try:
        token = lib.get_token(token_label=label)
    except pkcs11.exceptions.NoSuchToken:
        labels = [s.get_token().label for s in lib.get_slots(token_present=True)]
        seen = ", ".join(repr(t) for t in labels if t)  # "" is a token not initialised
        yield Check(False, "token", f"no token labelled {label!r} (tokens seen: {seen or 'none'})")
        return
    except pkcs11.exceptions.MultipleTokensReturned:
        yield Check(False, "token", f"several tokens labelled {label!r}; labels must be unique")
        return
    yield Check(
        True,
        "token",
        f"{label!r} in slot {token.slot.slot_id} ({token.manufacturer_id.strip()} "
        f"{token.model.strip()}, serial {token.serial.decode(errors='replace').strip()})",
    )

    try:
        keys = wrap_keys(settings)
    except ValueError as exc:
        yield Check(False, "settings", str(exc))
        return
    offered = set(token.slot.get_mechanisms())
    for mechanism, flags, use in mechanisms(keys.mechanism):
        what = f"mechanism {mechanism.name}"
        if mechanism not in offered:
            yield Check(False, what, f"not offered by the token (needed for {use})")
            continue
        try:
            info = token.slot.get_mechanism_info(mechanism)
        except pkcs11.PKCS11Error as exc:
            yield Check(False, what, f"no information on it: {type(exc).__name__}")
            continue
        missing = [str(f.name) for f in MechanismFlag if f & flags and not f & info.flags]
        if missing:
            yield Check(False, what, f"lacks {' and '.join(missing)} (needed for {use})")
        else:
            yield Check(True, what, f"{flags.name} for {use}".replace("|", " and "))

    signer_token = Token(module, label, settings.pin)
    try:
        signer_token.connect()
    except SignerError as exc:
        yield Check(False, "login", str(exc))
        return
    yield Check(True, "login", "the user PIN opens a session")
    try:
        yield from _keys(settings, keys, signer_token, now)
    finally:
        signer_token.close()


def _keys(
    settings: SignerSettings, keys: WrapKeys, token: Token, now: Callable[[], dt.datetime]
) -> Iterator[Check]:
    try:
        chain = load_ca_chain(settings)
        yield Check(True, "CA chain", f"{len(chain)} certificate(s) in {settings.ca_chain_file}")
    except (OSError, ValueError) as exc:
        chain = []
        yield Check(False, "CA chain", f"{settings.ca_chain_file}: {exc}")
    for label in (settings.seal_key_label, settings.tsa_key_label):
        yield _attempt(token, f"key {label}", partial(_signing_key, token, label))
        tsa = label == settings.tsa_key_label
        yield _attempt(
            token, f"certificate {label}", partial(_certificate, token, label, chain, now(), tsa)
        )
    yield _attempt(token, f"key {keys.current}", partial(_wrap_key, token, keys))
    for label in keys.previous:
        yield _attempt(token, f"key {label}", partial(_previous_wrap_key, token, label))


def _attempt(token: Token, what: str, check: Callable[[], str]) -> Check:
    """One check; a token error fails it (and reconnects for the next one)."""
    try:
        return Check(True, what, check())
    except (SignerError, pkcs11.PKCS11Error, ValueError) as exc:
        return Check(False, what, str(exc) or type(exc).__name__)
    finally:
        if not token.connected:
            with contextlib.suppress(SignerError):  # the next check says why
                token.connect()


def _protection(token: Token, cls: ObjectClass, label: str) -> None:
    attributes = token.key_attributes(cls, label)
    if attributes["extractable"] or not attributes["sensitive"]:
        raise ValueError(f"must be sensitive and not extractable, is {attributes}")


def _signing_key(token: Token, label: str) -> str:
    _protection(token, ObjectClass.PRIVATE_KEY, label)
    token.sign_digest(label, hashlib.sha256(_TEST_CONTEXT).digest())
    return "private key, sensitive, not extractable; signs (ECDSA)"


def _certificate(
    token: Token, label: str, chain: list[x509.Certificate], now: dt.datetime, tsa: bool
) -> str:
    cert = x509.load_der_x509_certificate(token.certificate(label))
    if tsa and not _timestamping_only(cert):
        # RFC 3161 2.3; openssl ts -verify refuses the tokens otherwise.
        raise ValueError("a TSA certificate needs one critical extended key usage: timeStamping")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ValueError(f"not an EC certificate: {cert.subject.rfc4514_string()}")
    digest = hashlib.sha256(_TEST_CONTEXT + b" certificate").digest()
    try:  # the certificate belongs to the key: it verifies the key's signature
        public.verify(
            token.sign_digest(label, digest), digest, ec.ECDSA(Prehashed(hashes.SHA256()))
        )
    except InvalidSignature:
        raise ValueError(f"{cert.subject.rfc4514_string()} is not the key's certificate") from None
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ValueError(f"not valid now (until {cert.not_valid_after_utc:%Y-%m-%d})")
    if chain and cert.issuer not in {c.subject for c in chain}:
        raise ValueError(f"issued by {cert.issuer.rfc4514_string()}, not in the CA chain")
    return (
        f"{cert.subject.rfc4514_string()}, matches the key, "
        f"valid until {cert.not_valid_after_utc:%Y-%m-%d}"
    )


def _timestamping_only(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return False
    return usage.critical and list(usage.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


def _wrap_key(token: Token, keys: WrapKeys) -> str:
    _protection(token, ObjectClass.SECRET_KEY, keys.current)
    wrapper = KeyWrapper(token, WrapKeys(keys.current, (), keys.mechanism))
    key = os.urandom(32)
    wrapped = wrapper.wrap(key, _TEST_CONTEXT)
    if wrapper.unwrap(wrapped, _TEST_CONTEXT) != key:
        raise ValueError("a wrapped test key came back different")
    try:
        wrapper.unwrap(wrapped, _TEST_CONTEXT + b" elsewhere")
    except UnwrapFailed:
        return (
            "secret key, sensitive, not extractable; wraps and unwraps a test key "
            f"({keys.mechanism.value})"
        )
    raise ValueError("a wrapped key unwrapped under another context")


def _previous_wrap_key(token: Token, label: str) -> str:
    _protection(token, ObjectClass.SECRET_KEY, label)
    return "older wrap key, sensitive, not extractable; unwraps only"


def run(settings: SignerSettings) -> int:
    """Prints one line per check; 0 if every check passed, else 1."""
    failed = False
    for check in check_token(settings, lambda: dt.datetime.now(dt.UTC)):
        print(check, flush=True)
        failed |= not check.ok
    print("token ready for the signer" if not failed else "token NOT ready for the signer")
    return 1 if failed else 0
