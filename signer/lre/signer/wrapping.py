"""Wrapped content keys: the blob format, the current wrap key and the older ones.

A blob names the wrap key it was made under, so that the wrap key can be
rotated: new keys are wrapped under ``wrap_key_label``, and blobs made under a
label of ``wrap_key_labels_previous`` still unwrap until `RewrapKeys` has
moved them to the current key. Formats, told apart by their first byte:

- ``0x01 || iv(12) || ct || tag``: AES-GCM, the context as associated data,
  no key id (before key rotation). Tried under the current key, then each
  older one: GCM authentication says which one made it.
- ``0x02 || key_id(8) || iv(12) || ct || tag``: AES-GCM; the associated data
  is the 9-byte header then the context.
- ``0x03 || key_id(8) || kw``: RFC 3394 key wrap, for tokens without AES-GCM
  or that refuse a caller's IV: ``aes-kw`` asks the token for
  CKM_AES_KEY_WRAP, ``aes-kw-ecb`` chains the same computation from the
  token's CKM_AES_ECB (signer/lre/signer/rfc3394.py), for tokens or remoting layers
  that offer no key wrap; the bytes are the same. Key wrap has no associated
  data, so the wrapped secret is ``SHA-256(header || context) || key`` and
  unwrapping checks the hash. Key wrap is a deterministic authenticated
  cipher over the whole secret: a blob that was not made by the wrap key fails
  its integrity check, and one made for another context (or with another
  header) unwraps to another hash. What the caller can do with a blob is then
  what GCM's associated data allows: unwrap it under the context it was made
  for, and nothing else. (It is deterministic: the same key and context give
  the same blob, which reveals nothing as every content key is random.) The
  secret is 48, 56 or 64 bytes, a multiple of 8, so plain RFC 3394 applies;
  CKM_AES_KEY_WRAP_PAD is avoided on purpose: vendors disagree on what it is
  (PKCS#7 padding then RFC 3394, or RFC 5649).

The key id is the first 8 bytes of SHA-256 of the wrap key's label: settings
name keys by label, so the id to label map is computed from the settings.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from dataclasses import dataclass

from lre.signer.errors import UnwrapFailed, WrapKeyUnknown
from lre.signer.token import Token

LEGACY_GCM, GCM, KW = 0x01, 0x02, 0x03
KEY_ID_BYTES = 8
_HEADER = 1 + KEY_ID_BYTES
_GCM_IV_BYTES = 12
_TAG_BYTES = 16
_HASH_BYTES = 32


class WrapMechanism(enum.Enum):
    AES_GCM = "aes-gcm"
    AES_KW = "aes-kw"  # CKM_AES_KEY_WRAP
    AES_KW_ECB = "aes-kw-ecb"  # the same bytes, chained from CKM_AES_ECB blocks

    @property
    def format(self) -> int:
        return GCM if self is WrapMechanism.AES_GCM else KW


def key_id(label: str) -> bytes:
    return hashlib.sha256(b"lre wrap key\x00" + label.encode()).digest()[:KEY_ID_BYTES]


@dataclass(frozen=True)
class WrapKeys:
    """The wrap key that wraps (``current``) and those that only unwrap."""

    current: str
    previous: tuple[str, ...]
    mechanism: WrapMechanism

    @classmethod
    def from_settings(cls, current: str, previous: str, mechanism: str) -> WrapKeys:
        try:
            chosen = WrapMechanism(mechanism)
        except ValueError:
            choices = ", ".join(m.value for m in WrapMechanism)
            raise ValueError(f"wrap_mechanism: expected one of {choices}") from None
        older = tuple(label.strip() for label in previous.split(",") if label.strip())
        if current in older:
            raise ValueError("wrap_key_labels_previous: must not name the wrap_key_label")
        return cls(current, older, chosen)

    def label_of(self, kid: bytes) -> str:
        for label in (self.current, *self.previous):
            if key_id(label) == kid:
                return label
        raise WrapKeyUnknown(
            f"made under wrap key id {kid.hex()}, which is neither wrap_key_label nor in "
            "wrap_key_labels_previous"
        )


class KeyWrapper:
    def __init__(self, token: Token, keys: WrapKeys) -> None:
        self._token = token
        self.keys = keys

    def wrap(self, key: bytes, context: bytes) -> bytes:
        header = bytes([self.keys.mechanism.format]) + key_id(self.keys.current)
        if self.keys.mechanism is WrapMechanism.AES_GCM:
            iv = os.urandom(_GCM_IV_BYTES)
            return (
                header + iv + self._token.gcm_encrypt(self.keys.current, iv, header + context, key)
            )
        bound = hashlib.sha256(header + context).digest()
        if self.keys.mechanism is WrapMechanism.AES_KW_ECB:
            return header + self._token.kw_wrap_ecb(self.keys.current, bound + key)
        return header + self._token.kw_wrap(self.keys.current, bound + key)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        kind = wrapped[:1]
        if kind == bytes([LEGACY_GCM]) and len(wrapped) >= 1 + _GCM_IV_BYTES + _TAG_BYTES:
            return self._unwrap_legacy(wrapped, context)
        if kind == bytes([GCM]) and len(wrapped) >= _HEADER + _GCM_IV_BYTES + _TAG_BYTES:
            header, iv = wrapped[:_HEADER], wrapped[_HEADER : _HEADER + _GCM_IV_BYTES]
            label = self.keys.label_of(header[1:])
            return self._token.gcm_decrypt(
                label, iv, header + context, wrapped[_HEADER + _GCM_IV_BYTES :]
            )
        if kind == bytes([KW]) and len(wrapped) >= _HEADER + 8 + _HASH_BYTES + 16:
            header = wrapped[:_HEADER]
            label = self.keys.label_of(header[1:])
            if self.keys.mechanism is WrapMechanism.AES_KW_ECB:
                secret = self._token.kw_unwrap_ecb(label, wrapped[_HEADER:])
            else:
                secret = self._token.kw_unwrap(label, wrapped[_HEADER:])
            bound = hashlib.sha256(header + context).digest()
            if not hmac.compare_digest(secret[:_HASH_BYTES], bound):
                raise UnwrapFailed("wrapped key does not authenticate under this context")
            return secret[_HASH_BYTES:]
        raise UnwrapFailed("not a wrapped key of a known format")

    def _unwrap_legacy(self, wrapped: bytes, context: bytes) -> bytes:
        iv, sealed = wrapped[1 : 1 + _GCM_IV_BYTES], wrapped[1 + _GCM_IV_BYTES :]
        for label in (self.keys.current, *self.keys.previous):
            try:
                return self._token.gcm_decrypt(label, iv, context, sealed)
            except UnwrapFailed:
                continue
        raise UnwrapFailed("wrapped key does not authenticate under this context")

    def is_current(self, wrapped: bytes) -> bool:
        """Made under the current wrap key with the current mechanism."""
        return wrapped[:_HEADER] == bytes([self.keys.mechanism.format]) + key_id(self.keys.current)

    def rewrap(self, wrapped: bytes, context: bytes) -> tuple[bytes, bool]:
        """The blob under the current key and mechanism; whether it had to change.

        The content key passes through this process's memory only, as for any
        unwrap; it never reaches the caller.
        """
        if self.is_current(wrapped):
            self.unwrap(wrapped, context)  # a blob for another context is refused all the same
            return wrapped, False
        return self.wrap(self.unwrap(wrapped, context), context), True
