"""Wrap key rotation and the key wrap fallback, over the real signer process on
a private copy of the SoftHSM token: blobs name their wrap key, both wrap
mechanisms read back, an older wrap key still unwraps, and RewrapKeys moves
blobs to the current key so that the older key can go."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import grpc
import pytest

from lre.signer.devsetup import DevPaths, settings_for
from lre.signer.token import Token
from lre.signer.wrapping import key_id
from lre.v1 import signing_pb2
from tests.support.processes import BIN, free_port
from tests.support.signer import lre_signer, signer, signer_env, unwrap

KEYS = {
    b"letters/0": b"\x00" * 32,
    b"letters/1": b"\x01" * 32,
    b"letters/2": b"\x02" * 16,
    b"letters/3": b"\x03" * 24,
    b"letters/5": b"\x05" * 32,
}


def legacy_blob(paths: DevPaths, key: bytes, context: bytes) -> bytes:
    """A 0x01 blob exactly as the signer made them before key ids: AES-GCM under
    lre-wrap, the context as associated data. Made on the session's token, whose
    wrap key the copies share."""
    settings = settings_for(paths)
    token = Token(settings.pkcs11_module, settings.token_label, settings.pin)
    token.connect()
    try:
        iv = os.urandom(12)
        return b"\x01" + iv + token.gcm_encrypt("lre-wrap", iv, context, key)
    finally:
        token.close()


def refused(call: object, *args: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(*args, timeout=10)  # type: ignore[operator]
    return raised.value


def test_rotation_from_legacy_and_both_mechanisms_to_a_new_wrap_key(
    dev_var: DevPaths, token_copy: Path, tmp_path: Path
) -> None:
    blobs = {b"letters/0": legacy_blob(dev_var, KEYS[b"letters/0"], b"letters/0")}
    old, new = key_id("lre-wrap"), key_id("lre-wrap-2")

    with signer(dev_var, token_copy, tmp_path / "1.log") as stub:  # aes-gcm, the default
        blobs[b"letters/1"] = stub.WrapKey(
            signing_pb2.WrapKeyRequest(key=KEYS[b"letters/1"], context=b"letters/1"), timeout=10
        ).wrapped_key
        assert blobs[b"letters/1"][:9] == b"\x02" + old
        assert unwrap(stub, blobs[b"letters/0"], b"letters/0") == KEYS[b"letters/0"]

    with signer(dev_var, token_copy, tmp_path / "2.log", wrap_mechanism="aes-kw") as stub:
        answer = stub.WrapKeys(
            signing_pb2.WrapKeysRequest(
                keys=[
                    signing_pb2.WrapKeyRequest(key=KEYS[c], context=c)
                    for c in (b"letters/2", b"letters/3")
                ]
            ),
            timeout=10,
        )
        blobs[b"letters/2"], blobs[b"letters/3"] = answer.wrapped_keys
        assert blobs[b"letters/2"][:9] == b"\x03" + old
        # 9 header bytes, then RFC 3394 over SHA-256(header || context) || key.
        assert len(blobs[b"letters/2"]) == 9 + 8 + 32 + 16
        for context, blob in blobs.items():  # every format reads back under aes-kw
            assert unwrap(stub, blob, context) == KEYS[context]
        # The context is bound without associated data: another one is refused,
        wrong = refused(
            stub.UnwrapKey,
            signing_pb2.UnwrapKeyRequest(wrapped_key=blobs[b"letters/2"], context=b"letters/3"),
        )
        assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "wrapped_key" in (wrong.details() or "")
        # and so is a blob altered anywhere (an altered key id names no known key).
        for at in (0, 1, 9, 20, len(blobs[b"letters/2"]) - 1):
            altered = bytearray(blobs[b"letters/2"])
            altered[at] ^= 0x01
            error = refused(
                stub.UnwrapKey,
                signing_pb2.UnwrapKeyRequest(wrapped_key=bytes(altered), context=b"letters/2"),
            )
            expected = (
                grpc.StatusCode.FAILED_PRECONDITION if at == 1 else grpc.StatusCode.INVALID_ARGUMENT
            )
            assert error.code() == expected, (at, error)

    # The same key wrap chained from the token's AES-ECB: the same bytes, so
    # each way reads the other's blobs (letters/5 is unwrapped by C_UnwrapKey below).
    with signer(dev_var, token_copy, tmp_path / "2b.log", wrap_mechanism="aes-kw-ecb") as stub:
        blobs[b"letters/5"] = stub.WrapKey(
            signing_pb2.WrapKeyRequest(key=KEYS[b"letters/5"], context=b"letters/5"), timeout=10
        ).wrapped_key
        assert blobs[b"letters/5"][:9] == b"\x03" + old
        for context, blob in blobs.items():
            assert unwrap(stub, blob, context) == KEYS[context]
        altered = bytearray(blobs[b"letters/5"])
        altered[20] ^= 0x01
        for blob, context in ((bytes(altered), b"letters/5"), (blobs[b"letters/5"], b"letters/6")):
            error = refused(
                stub.UnwrapKey, signing_pb2.UnwrapKeyRequest(wrapped_key=blob, context=context)
            )
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (context, error)

    made = lre_signer(
        dev_var, token_copy, "create-key", "--label", "lre-wrap-2", "--kind", "aes-256"
    )
    assert made.returncode == 0, made.stderr

    rotated = {"wrap_key_label": "lre-wrap-2", "wrap_key_labels_previous": "lre-wrap"}
    with signer(dev_var, token_copy, tmp_path / "3.log", **rotated) as stub:
        for context, blob in blobs.items():  # the older key still unwraps
            assert unwrap(stub, blob, context) == KEYS[context]
        fresh = stub.WrapKey(
            signing_pb2.WrapKeyRequest(key=b"\x04" * 32, context=b"letters/4"), timeout=10
        ).wrapped_key
        assert fresh[:9] == b"\x02" + new
        order = [*blobs, b"letters/4"]
        request = signing_pb2.RewrapKeysRequest(
            keys=[
                signing_pb2.UnwrapKeyRequest(
                    wrapped_key={**blobs, b"letters/4": fresh}[c], context=c
                )
                for c in order
            ]
        )
        moved = stub.RewrapKeys(request, timeout=10).keys
        assert [m.rewrapped for m in moved] == [True] * len(blobs) + [False]
        assert all(m.wrapped_key[:9] == b"\x02" + new for m in moved)
        assert moved[-1].wrapped_key == fresh
        rewrapped = {c: m.wrapped_key for c, m in zip(order, moved, strict=True)}
        # A batch with one blob for another context fails whole, naming the item.
        request.keys[1].context = b"letters/9"
        error = refused(stub.RewrapKeys, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "keys[1].wrapped_key" in (error.details() or "")
        empty = refused(stub.RewrapKeys, signing_pb2.RewrapKeysRequest())
        assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT

    # The older key is no longer listed: what was rewrapped still opens, the
    # rest is refused, saying which wrap key it needs.
    with signer(dev_var, token_copy, tmp_path / "4.log", wrap_key_label="lre-wrap-2") as stub:
        for context, blob in rewrapped.items():
            assert unwrap(stub, blob, context) == {**KEYS, b"letters/4": b"\x04" * 32}[context]
        unknown = refused(
            stub.UnwrapKey,
            signing_pb2.UnwrapKeyRequest(wrapped_key=blobs[b"letters/1"], context=b"letters/1"),
        )
        assert unknown.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert old.hex() in (unknown.details() or "")
        legacy = refused(
            stub.UnwrapKey,
            signing_pb2.UnwrapKeyRequest(wrapped_key=blobs[b"letters/0"], context=b"letters/0"),
        )
        assert legacy.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_bad_wrap_mechanism_setting_stops_the_signer_naming_it(
    dev_var: DevPaths, token_copy: Path
) -> None:
    env = {
        **os.environ,
        **signer_env(dev_var, free_port(), free_port()),
        "SOFTHSM2_CONF": str(token_copy),
        "LRE_SIGNER_WRAP_MECHANISM": "aes-cbc",
    }
    done = subprocess.run(
        [str(BIN / "lre-signer"), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "wrap_mechanism: expected one of aes-gcm, aes-kw, aes-kw-ecb" in done.stderr
