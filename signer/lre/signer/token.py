"""The PKCS#11 token: the only module that touches the HSM.

python-pkcs11 initialises the module without OS locking and releases the GIL
during each call, so SoftHSM runs without its mutexes: two threads calling at
once can crash the process. Every call here therefore goes through one lock
per process; the signer scales with processes, not threads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pkcs11
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from lre.signer import metrics, rfc3394
from lre.signer.errors import KeyNotFound, TokenUnavailable, UnwrapFailed

log = logging.getLogger("lre.signer.token")

# A key wrapped with CKM_AES_KEY_WRAP comes back as a session object the
# signer reads, then destroys: extractable, not sensitive, never on the token.
_SESSION_SECRET = {
    Attribute.TOKEN: False,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: False,
    Attribute.EXTRACTABLE: True,
}


def _session_secret(value: bytes) -> dict[Attribute, Any]:
    return {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
        Attribute.VALUE: value,
        **_SESSION_SECRET,
    }


class Token:
    """A logged-in session on the token found by label, shared by all threads."""

    def __init__(self, module: Path, label: str, pin: Callable[[], str | None]) -> None:
        self._module = module
        self._label = label
        self._pin = pin
        self._lock = threading.Lock()
        self._lib: Any = None
        self._session: Any = None
        self._keys: dict[tuple[ObjectClass, str], Any] = {}

    # -- connection --------------------------------------------------------

    def connect(self) -> None:
        """Loads the module, finds the token by label and logs in.

        Raises TokenUnavailable with a message that names what is wrong but
        never the PIN.
        """
        with self._lock:
            self._close_locked()
            if not self._module.exists():
                raise TokenUnavailable(f"PKCS#11 module not found: {self._module}")
            pin = self._pin()
            if not pin:
                raise TokenUnavailable("no user PIN configured")
            try:
                if self._lib is None:
                    self._lib = pkcs11.lib(str(self._module))
                else:
                    # Picks up tokens created or removed since the last load.
                    self._lib.reinitialize()
                token = self._lib.get_token(token_label=self._label)
                self._session = _login(token, pin)
            except pkcs11.exceptions.PinIncorrect:
                raise TokenUnavailable("token login refused: incorrect PIN") from None
            except pkcs11.exceptions.PinLocked:
                raise TokenUnavailable("token login refused: PIN locked") from None
            except pkcs11.exceptions.NoSuchToken:
                raise TokenUnavailable(f"no token labelled {self._label!r}") from None
            except pkcs11.PKCS11Error as exc:
                raise TokenUnavailable(f"token error: {type(exc).__name__}") from None
            log.info("token connected", extra={"token_label": self._label})

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        self._keys.clear()
        if self._session is not None:
            with contextlib.suppress(pkcs11.PKCS11Error):
                self._session.close()
            self._session = None

    @property
    def connected(self) -> bool:
        return self._session is not None

    @contextmanager
    def _call(self, operation: str) -> Iterator[Any]:
        """Serialises one PKCS#11 operation, times it, and maps token failures."""
        with self._lock:
            if self._session is None:
                raise TokenUnavailable("token not connected")
            start = time.perf_counter()
            try:
                yield self._session
            except (KeyNotFound, UnwrapFailed):
                raise
            except pkcs11.PKCS11Error as exc:
                metrics.HSM_ERRORS.labels(operation).inc()
                self._close_locked()
                raise TokenUnavailable(
                    f"token error during {operation}: {type(exc).__name__}"
                ) from None
            finally:
                metrics.HSM_SECONDS.labels(operation).observe(time.perf_counter() - start)

    def _object(self, session: Any, cls: ObjectClass, label: str) -> Any:
        key = (cls, label)
        if key not in self._keys:
            found = list(session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label}))
            if len(found) != 1:
                raise KeyNotFound(f"{len(found)} objects of class {cls.name} labelled {label!r}")
            self._keys[key] = found[0]
        return self._keys[key]

    # -- operations ----------------------------------------------------------

    def sign_digest(self, key_label: str, digest: bytes) -> bytes:
        """ECDSA over a precomputed digest (SoftHSM has only raw CKM_ECDSA); DER signature."""
        with self._call("sign") as session:
            key = self._object(session, ObjectClass.PRIVATE_KEY, key_label)
            raw = key.sign(digest, mechanism=Mechanism.ECDSA)
        # PKCS#11 returns r || s; CMS wants the DER Ecdsa-Sig-Value.
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half]), int.from_bytes(raw[half:]))

    # The wrapped-key format around these is signer/lre/signer/wrapping.py's.

    def gcm_encrypt(self, key_label: str, iv: bytes, aad: bytes, plaintext: bytes) -> bytes:
        """AES-GCM under a secret key on the token, with the caller's IV: ct || tag."""
        with self._call("wrap") as session:
            key = self._object(session, ObjectClass.SECRET_KEY, key_label)
            return bytes(
                key.encrypt(
                    plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad)
                )
            )

    def gcm_decrypt(self, key_label: str, iv: bytes, aad: bytes, sealed: bytes) -> bytes:
        with self._call("unwrap") as session:
            key = self._object(session, ObjectClass.SECRET_KEY, key_label)
            try:
                return bytes(
                    key.decrypt(
                        sealed, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad)
                    )
                )
            except (pkcs11.exceptions.EncryptedDataInvalid, pkcs11.exceptions.GeneralError):
                # SoftHSM reports a failed GCM tag as a general error.
                raise UnwrapFailed("wrapped key does not authenticate under this context") from None

    def kw_wrap(self, key_label: str, secret: bytes) -> bytes:
        """RFC 3394 key wrap (CKM_AES_KEY_WRAP) of ``secret`` (a multiple of 8 bytes).

        Tokens offer AES key wrap only through C_WrapKey, which wraps a key
        object: the secret becomes a session object for the duration of the call.
        """
        with self._call("wrap") as session:
            key = self._object(session, ObjectClass.SECRET_KEY, key_label)
            held = session.create_object(_session_secret(secret))
            try:
                return bytes(key.wrap_key(held, mechanism=Mechanism.AES_KEY_WRAP))
            finally:
                held.destroy()

    def kw_unwrap(self, key_label: str, wrapped: bytes) -> bytes:
        with self._call("unwrap") as session:
            key = self._object(session, ObjectClass.SECRET_KEY, key_label)
            try:
                held = key.unwrap_key(
                    ObjectClass.SECRET_KEY,
                    KeyType.GENERIC_SECRET,
                    wrapped,
                    mechanism=Mechanism.AES_KEY_WRAP,
                    store=False,
                    template=_SESSION_SECRET,
                )
            except (
                pkcs11.exceptions.WrappedKeyInvalid,
                pkcs11.exceptions.WrappedKeyLenRange,
                pkcs11.exceptions.EncryptedDataInvalid,
                pkcs11.exceptions.GeneralError,
            ):
                # SoftHSM reports a failed integrity check as a general error.
                raise UnwrapFailed(
                    "wrapped key does not authenticate under this wrap key"
                ) from None
            try:
                return bytes(held[Attribute.VALUE])
            finally:
                held.destroy()

    def kw_wrap_ecb(self, key_label: str, secret: bytes) -> bytes:
        """The same RFC 3394 wrap, chained here from single AES blocks the token
        computes (CKM_AES_ECB), for tokens or remoting layers without key wrap."""
        with self._call("wrap") as session:
            key = self._object(session, ObjectClass.SECRET_KEY, key_label)
            return rfc3394.wrap(
                lambda b: bytes(key.encrypt(b, mechanism=Mechanism.AES_ECB)), secret
            )

    def kw_unwrap_ecb(self, key_label: str, wrapped: bytes) -> bytes:
        with self._call("unwrap") as session:
            key = self._object(session, ObjectClass.SECRET_KEY, key_label)
            try:
                return rfc3394.unwrap(
                    lambda b: bytes(key.decrypt(b, mechanism=Mechanism.AES_ECB)), wrapped
                )
            except rfc3394.IntegrityError:
                raise UnwrapFailed(
                    "wrapped key does not authenticate under this wrap key"
                ) from None

    def certificate(self, label: str) -> bytes:
        with self._call("read") as session:
            return bytes(self._object(session, ObjectClass.CERTIFICATE, label)[Attribute.VALUE])

    def probe(self, key_label: str) -> None:
        """A real signature, so that health means 'can sign now'."""
        self.sign_digest(key_label, b"\x00" * 32)

    # -- key ceremony ----------------------------------------------------------

    def generate_ec_key(self, label: str, curve: str = "secp256r1") -> None:
        with self._call("generate") as session:
            if list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
                )
            ):
                raise ValueError(f"a private key labelled {label!r} exists already")
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True
            )
            params.generate_keypair(
                store=True,
                label=label,
                id=label.encode(),
                public_template={Attribute.TOKEN: True},
                private_template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                },
            )

    def generate_wrap_key(self, label: str) -> None:
        with self._call("generate") as session:
            if list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
                )
            ):
                raise ValueError(f"a secret key labelled {label!r} exists already")
            session.generate_key(
                KeyType.AES,
                256,
                label=label,
                id=label.encode(),
                store=True,
                template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                },
            )

    def public_key_info(self, label: str) -> bytes:
        """DER SubjectPublicKeyInfo of the key pair labelled ``label``."""
        with self._call("read") as session:
            return bytes(encode_ec_public_key(self._object(session, ObjectClass.PUBLIC_KEY, label)))

    def import_certificate(self, label: str, der: bytes, subject: bytes) -> None:
        with self._call("import") as session:
            for old in session.get_objects(
                {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: label}
            ):
                old.destroy()
            self._keys.pop((ObjectClass.CERTIFICATE, label), None)
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.LABEL: label,
                    Attribute.ID: label.encode(),
                    Attribute.SUBJECT: subject,
                    Attribute.VALUE: der,
                }
            )

    def key_attributes(self, cls: ObjectClass, label: str) -> dict[str, bool]:
        with self._call("read") as session:
            obj = self._object(session, cls, label)
            return {
                "extractable": bool(obj[Attribute.EXTRACTABLE]),
                "sensitive": bool(obj[Attribute.SENSITIVE]),
            }

    def has_object(self, cls: ObjectClass, label: str) -> bool:
        with self._call("read") as session:
            return bool(list(session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label})))


def _login(token: Any, pin: str) -> Any:
    try:
        return token.open(rw=True, user_pin=pin)
    except pkcs11.exceptions.UserAlreadyLoggedIn:
        # Login state is per application, not per session: another session of
        # this process logged in already, which is what we wanted.
        return token.open(rw=True)
