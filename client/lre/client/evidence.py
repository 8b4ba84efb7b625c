"""A letter's evidence as its sender reads it, written to a folder with the
commands that verify each file independently of the service (openssl,
pdfsig, lre-verify)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import serialization

from lre.client.channels import bearer
from lre.runtime import structures
from lre.v1 import common_pb2, custody_pb2, custody_pb2_grpc, signing_pb2, signing_pb2_grpc


class EvidenceWriter:
    """``custody``: the sender's connection; ``operator``: the operator's,
    which seals tree heads; ``signing``: the signer, for its certificates."""

    def __init__(
        self,
        custody: custody_pb2_grpc.CustodyServiceStub,
        operator: custody_pb2_grpc.CustodyServiceStub,
        signing: signing_pb2_grpc.SigningServiceStub,
        folder: Path,
    ) -> None:
        self.custody = custody
        self.operator = operator
        self.signing = signing
        self.folder = folder

    def write(self, letter: str, token: str) -> list[str]:
        """Every evidence of ``letter`` as the sender reads it: the JSON and its
        CAdES seal (with the seal's signature and timestamp token apart, for
        `openssl ts`), the signed PDF proof and the offline bundle; returns the
        commands that verify each of them."""
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        chain = self.signing.GetCertificateChain(
            signing_pb2.GetCertificateChainRequest(purpose=signing_pb2.KEY_PURPOSE_TIMESTAMPING)
        ).certificates
        root = folder / "root-ca.pem"
        root.write_bytes(
            x509.load_der_x509_certificate(chain[-1]).public_bytes(serialization.Encoding.PEM)
        )
        tsa = folder / "tsa.pem"
        tsa.write_bytes(
            x509.load_der_x509_certificate(chain[0]).public_bytes(serialization.Encoding.PEM)
        )
        # What the provider publishes beside its root: whose seals and
        # timestamps a bundle must carry (the root certifies others too).
        seal = self.signing.GetCertificateChain(
            signing_pb2.GetCertificateChainRequest(purpose=signing_pb2.KEY_PURPOSE_SEAL)
        ).certificates[0]
        provider = self.folder / "provider-certificates.pem"
        provider.write_bytes(
            x509.load_der_x509_certificate(seal).public_bytes(serialization.Encoding.PEM)
            + tsa.read_bytes()
        )
        commands = []
        evidence = self.custody.ListEvidence(
            custody_pb2.ListEvidenceRequest(parent=letter), metadata=bearer(token)
        )
        # A bundle proves the evidence is in the log: it needs a sealed tree
        # head that contains it (sealed every minute; here, at once).
        self.operator.SealTreeHead(custody_pb2.SealTreeHeadRequest())
        for number, item in enumerate(evidence.evidence, start=1):
            event = (
                common_pb2.EvidenceEvent.Name(item.event).removeprefix("EVIDENCE_EVENT_").lower()
            )
            stem = folder / f"{number}-{event}"
            stem.with_suffix(".json").write_bytes(item.document)
            stem.with_suffix(".p7m").write_bytes(item.seal)
            signature, token_der = signature_and_timestamp(item.seal)
            stem.with_suffix(".sig").write_bytes(signature)
            stem.with_suffix(".tst").write_bytes(token_der)
            stem.with_suffix(".pdf").write_bytes(
                self.custody.GetEvidenceProof(
                    custody_pb2.GetEvidenceProofRequest(name=item.name),
                    metadata=bearer(token),
                    timeout=60,
                ).pdf
            )
            stem.with_suffix(".zip").write_bytes(self.bundle(item.name, token))
            commands.append(
                f"openssl cms -verify -inform DER -in {stem}.p7m -CAfile {root} -out /dev/null"
            )
            commands.append(
                f"openssl ts -verify -data {stem}.sig -in {stem}.tst -token_in"
                f" -CAfile {root} -untrusted {tsa}"
            )
            commands.append(f"pdfsig {stem}.pdf")
            commands.append(f"{_verifier()} {stem}.zip --trust {root} --provider {provider}")
        return commands

    def bundle(self, evidence: str, token: str, timeout_s: float = 60) -> bytes:
        """The evidence's offline bundle, once the log's sequencer has put it
        under the tree head just sealed (it numbers entries every 0.2 s)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return b"".join(
                    chunk.data
                    for chunk in self.custody.GetEvidenceBundle(
                        custody_pb2.GetEvidenceBundleRequest(name=evidence),
                        metadata=bearer(token),
                        timeout=60,
                    )
                )
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)
            self.operator.SealTreeHead(custody_pb2.SealTreeHeadRequest())


def signature_and_timestamp(seal: bytes) -> tuple[bytes, bytes]:
    """The signature value and its RFC 3161 token (the CAdES B-T attribute)."""
    content = asn1.decode_der(structures.ContentInfo, seal).content
    (signer_info,) = content.signer_infos.as_list()
    assert signer_info.unsigned_attrs is not None
    for attribute in signer_info.unsigned_attrs.as_list():
        if attribute.attr_type == structures.ID_SIGNATURE_TIME_STAMP_TOKEN:
            (token,) = attribute.attr_values.as_list()
            return signer_info.signature, asn1.encode_der(token)
    raise ValueError("the seal carries no signature timestamp")


def _verifier() -> str:
    """This client's own lre-verify, installed beside its interpreter: the
    printed command runs as it is, whether or not the virtualenv is active
    (relative to the working directory when it is below it)."""
    program = Path(sys.executable).parent / "lre-verify"
    return str(program.relative_to(Path.cwd()) if program.is_relative_to(Path.cwd()) else program)
