"""The key ceremonies of docs/hsm.md, run as written on a private copy of the
SoftHSM token with the real signer: certificate renewal with the next keys
prepared while the current ones sign, and a backup of the token restored into
a fresh directory."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lre.signer import pki
from lre.signer.devsetup import DevPaths
from lre.v1 import signing_pb2, signing_pb2_grpc
from tests.support.pki import openssl, ts_verify
from tests.support.signer import check_token, lre_signer, signer, unwrap

SEAL, TSA = signing_pb2.KEY_PURPOSE_SEAL, signing_pb2.KEY_PURPOSE_TIMESTAMPING


def seal(stub: signing_pb2_grpc.SigningServiceStub, content: bytes, out: Path) -> Path:
    out.write_bytes(
        stub.SealEvidence(signing_pb2.SealEvidenceRequest(content=content), timeout=10).signed_data
    )
    return out


def chain(
    stub: signing_pb2_grpc.SigningServiceStub, purpose: signing_pb2.KeyPurpose
) -> list[bytes]:
    request = signing_pb2.GetCertificateChainRequest(purpose=purpose)
    return list(stub.GetCertificateChain(request, timeout=10).certificates)


def verified_signer(sealed: Path, paths: DevPaths, tmp_path: Path) -> tuple[bytes, bytes]:
    """openssl verifies the seal up to the root; returns (content, signer certificate DER)."""
    signer_pem = tmp_path / f"{sealed.stem}-signer.pem"
    done = openssl(
        "cms", "-verify", "-inform", "DER", "-in", sealed,
        "-CAfile", paths.pki / "root-ca.pem", "-signer", signer_pem,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cert = x509.load_pem_x509_certificate(signer_pem.read_bytes())
    return done.stdout.encode(), cert.public_bytes(serialization.Encoding.DER)


def timestamp_verifies(
    stub: signing_pb2_grpc.SigningServiceStub, paths: DevPaths, tsa_cert_der: bytes, tmp: Path
) -> bool:
    """Without -cert in the query, so that openssl must use the certificate given."""
    document, query, reply, cert = (tmp / n for n in ("doc", "q.tsq", "r.tsr", "tsa.pem"))
    document.write_bytes(b"a letter " + tsa_cert_der[-16:])
    assert openssl("ts", "-query", "-data", document, "-sha256", "-out", query).returncode == 0
    answer = stub.Timestamp(
        signing_pb2.TimestampRequest(time_stamp_req=query.read_bytes()), timeout=10
    )
    reply.write_bytes(answer.time_stamp_resp)
    cert.write_bytes(
        x509.load_der_x509_certificate(tsa_cert_der).public_bytes(serialization.Encoding.PEM)
    )
    return ts_verify(document, reply, paths.pki / "root-ca.pem", cert)


def test_renewal_prepares_the_next_keys_while_the_current_ones_sign(
    dev_var: DevPaths, token_copy: Path, tmp_path: Path
) -> None:
    ca = pki.LocalCA.load(dev_var.pki / "root-ca.key", dev_var.pki / "root-ca.pem")
    before = b'{"event":"SubmissionAcceptance","letter":"letters/before"}'
    with signer(dev_var, token_copy, tmp_path / "before.log") as stub:
        old_seal, old_tsa = chain(stub, SEAL), chain(stub, TSA)
        sealed_before = seal(stub, before, tmp_path / "before.p7m")
        # The ceremony of docs/hsm.md, beside the serving signer.
        for label, purpose, subject in (
            ("lre-seal-2", pki.SEAL, "CN=LRE Development Seal 2,O=LRE development,C=FR"),
            ("lre-tsa-2", pki.TIMESTAMPING, "CN=LRE Development TSA 2,O=LRE development,C=FR"),
        ):
            made = lre_signer(dev_var, token_copy, "create-key", "--label", label)
            assert made.returncode == 0, made.stderr
            csr = tmp_path / f"{label}.csr"
            asked = lre_signer(
                dev_var,
                token_copy,
                "csr",
                "--label",
                label,
                "--subject",
                subject,
                "--out",
                str(csr),
            )
            assert asked.returncode == 0, asked.stderr
            request = x509.load_pem_x509_csr(csr.read_bytes())
            der = ca.issue(request.public_bytes(serialization.Encoding.DER), purpose)
            (tmp_path / f"{label}.der").write_bytes(der)
            stored = lre_signer(
                dev_var, token_copy, "import-certificate", "--label", label,
                "--cert", str(tmp_path / f"{label}.der"),
            )  # fmt: skip
            assert stored.returncode == 0, stored.stderr
        # Still signing with the current keys.
        assert chain(stub, SEAL) == old_seal
        assert (
            verified_signer(seal(stub, before, tmp_path / "during.p7m"), dev_var, tmp_path)[1]
            == old_seal[0]
        )

    renewed = {"seal_key_label": "lre-seal-2", "tsa_key_label": "lre-tsa-2"}
    code, lines, output = check_token(dev_var, token_copy, **renewed)
    assert code == 0, output
    assert "CN=LRE Development Seal 2" in lines["certificate lre-seal-2"]

    after = b'{"event":"SubmissionAcceptance","letter":"letters/after"}'
    with signer(dev_var, token_copy, tmp_path / "after.log", **renewed) as stub:
        new_seal, new_tsa = chain(stub, SEAL), chain(stub, TSA)
        assert new_seal[0] == (tmp_path / "lre-seal-2.der").read_bytes()
        assert new_tsa[0] == (tmp_path / "lre-tsa-2.der").read_bytes()
        assert new_seal[1:] == old_seal[1:] and new_tsa[1:] == old_tsa[1:]
        sealed_after = seal(stub, after, tmp_path / "after.p7m")
        assert timestamp_verifies(stub, dev_var, new_tsa[0], tmp_path)
        assert not timestamp_verifies(stub, dev_var, old_tsa[0], tmp_path)

    # Each seal verifies, each under its own certificate.
    assert verified_signer(sealed_before, dev_var, tmp_path) == (before, old_seal[0])
    assert verified_signer(sealed_after, dev_var, tmp_path) == (after, new_seal[0])
    assert old_seal[0] != new_seal[0]


def test_a_token_backup_restored_into_a_fresh_directory_unwraps_older_keys(
    dev_var: DevPaths, token_copy: Path, tmp_path: Path
) -> None:
    """docs/hsm.md, SoftHSM: stop the signer, archive the token directory, and
    (with the PIN files kept apart) restore it anywhere."""
    tokens = token_copy.parent / "tokens"
    wrapped = {}
    with signer(dev_var, token_copy, tmp_path / "before.log") as stub:
        wrapped[b"letters/gcm"] = stub.WrapKey(
            signing_pb2.WrapKeyRequest(key=b"G" * 32, context=b"letters/gcm"), timeout=10
        ).wrapped_key
    with signer(dev_var, token_copy, tmp_path / "kw.log", wrap_mechanism="aes-kw") as stub:
        wrapped[b"letters/kw"] = stub.WrapKey(
            signing_pb2.WrapKeyRequest(key=b"K" * 32, context=b"letters/kw"), timeout=10
        ).wrapped_key
    # The signer is stopped: the files are consistent.
    backup = tmp_path / "token-backup.tar.gz"
    with tarfile.open(backup, "w:gz") as archive:
        archive.add(tokens, arcname="tokens")
    # After the backup, a key made by mistake, then the disk is lost.
    made = lre_signer(dev_var, token_copy, "create-key", "--label", "after-backup")
    assert made.returncode == 0, made.stderr
    shutil.rmtree(tokens)

    fresh = tmp_path / "restored"
    fresh.mkdir()
    with tarfile.open(backup) as archive:
        archive.extractall(fresh, filter="data")
    conf = fresh / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {fresh / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\n",
        encoding="utf-8",
    )
    code, _, output = check_token(dev_var, conf)
    assert code == 0, output
    code, lines, _ = check_token(dev_var, conf, seal_key_label="after-backup")
    assert lines["key after-backup"].startswith("FAIL 0 objects"), lines  # the backup's state
    with signer(dev_var, conf, tmp_path / "restored.log") as stub:
        assert unwrap(stub, wrapped[b"letters/gcm"], b"letters/gcm") == b"G" * 32
        assert unwrap(stub, wrapped[b"letters/kw"], b"letters/kw") == b"K" * 32
        content = b'{"event":"Restored"}'
        assert verified_signer(seal(stub, content, tmp_path / "r.p7m"), dev_var, tmp_path)[0] == (
            content
        )
