"""SigningService over gRPC: protobuf in, signer calls, protobuf out."""

from __future__ import annotations

import grpc
from google.protobuf import timestamp_pb2

from lre.runtime.serving import MAX_MESSAGE_BYTES
from lre.runtime.status import abort, invalid_argument
from lre.signer import pki
from lre.signer.app import Signer
from lre.signer.errors import (
    BadPdf,
    BadTimestampRequest,
    ClockNotTrusted,
    StaleValidationData,
    TokenUnavailable,
    UnwrapFailed,
    ValidationDataUnavailable,
    WrapKeyUnknown,
)
from lre.signer.pdf_digest import DIGEST_BYTES
from lre.signer.tsa import granted
from lre.v1 import signing_pb2, signing_pb2_grpc

MAX_SEAL_CONTENT = 1 << 20
# The signed PDF grows by the signature and its validation data (~20 KB) and
# must still fit a message; a proof is ~50 KB.
MAX_PDF_BYTES = MAX_MESSAGE_BYTES - (64 << 10)
MAX_CONTEXT = 1024
MAX_KEYS_PER_CALL = 256
_PURPOSES = {
    signing_pb2.KEY_PURPOSE_SEAL: pki.SEAL,
    signing_pb2.KEY_PURPOSE_TIMESTAMPING: pki.TIMESTAMPING,
}


class SigningServicer(signing_pb2_grpc.SigningServiceServicer):
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def Timestamp(
        self, request: signing_pb2.TimestampRequest, context: grpc.ServicerContext
    ) -> signing_pb2.TimestampResponse:
        try:
            tsa = self._signer.tsa
            token = tsa.issue(tsa.parse(request.time_stamp_req))
        except BadTimestampRequest as exc:
            invalid_argument(context, "time_stamp_req", f"{exc.fail_info}: {exc}")
        except ClockNotTrusted as exc:
            abort(context, grpc.StatusCode.UNAVAILABLE, f"time not available: {exc}")
        except TokenUnavailable:
            abort(context, grpc.StatusCode.UNAVAILABLE, "the signing token is not available")
        return signing_pb2.TimestampResponse(time_stamp_resp=granted(token))

    def SealEvidence(
        self, request: signing_pb2.SealEvidenceRequest, context: grpc.ServicerContext
    ) -> signing_pb2.SealEvidenceResponse:
        if not request.content:
            invalid_argument(context, "content", "must not be empty")
        if len(request.content) > MAX_SEAL_CONTENT:
            invalid_argument(context, "content", f"must be at most {MAX_SEAL_CONTENT} bytes")
        try:
            signed, signing_time = self._signer.sealer.seal(request.content)
        except ValidationDataUnavailable:
            abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the validation data of the seal certificate is not available (CRLs)",
            )
        except ClockNotTrusted as exc:
            abort(context, grpc.StatusCode.UNAVAILABLE, f"time not available: {exc}")
        except TokenUnavailable:
            abort(context, grpc.StatusCode.UNAVAILABLE, "the signing token is not available")
        when = timestamp_pb2.Timestamp()
        when.FromDatetime(signing_time)
        return signing_pb2.SealEvidenceResponse(signed_data=signed, signing_time=when)

    def SignPdf(
        self, request: signing_pb2.SignPdfRequest, context: grpc.ServicerContext
    ) -> signing_pb2.SignPdfResponse:
        if not request.pdf:
            invalid_argument(context, "pdf", "must not be empty")
        if len(request.pdf) > MAX_PDF_BYTES:
            invalid_argument(context, "pdf", f"must be at most {MAX_PDF_BYTES} bytes")
        try:
            return signing_pb2.SignPdfResponse(signed_pdf=self._signer.pades.sign(request.pdf))
        except BadPdf as exc:
            invalid_argument(context, "pdf", str(exc))
        except ValidationDataUnavailable:
            abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the validation data of the seal certificate is not available (CRLs)",
            )
        except ClockNotTrusted as exc:
            abort(context, grpc.StatusCode.UNAVAILABLE, f"time not available: {exc}")
        except TokenUnavailable:
            abort(context, grpc.StatusCode.UNAVAILABLE, "the signing token is not available")

    def GetPdfValidationData(
        self, request: signing_pb2.GetPdfValidationDataRequest, context: grpc.ServicerContext
    ) -> signing_pb2.PdfValidationData:
        try:
            data = self._signer.pdf_digest.validation_data()
        except ValidationDataUnavailable:
            abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the validation data of the seal certificate is not available (CRLs)",
            )
        except TokenUnavailable:
            abort(context, grpc.StatusCode.UNAVAILABLE, "the signing token is not available")
        return signing_pb2.PdfValidationData(
            certificates=data.certificates, crls=data.crls, id=data.id
        )

    def SignPdfDigest(
        self, request: signing_pb2.SignPdfDigestRequest, context: grpc.ServicerContext
    ) -> signing_pb2.SignPdfDigestResponse:
        if len(request.document_digest) != DIGEST_BYTES:
            invalid_argument(
                context, "document_digest", f"must be a SHA-256 digest ({DIGEST_BYTES} bytes)"
            )
        if len(request.validation_data_id) != DIGEST_BYTES:
            invalid_argument(
                context,
                "validation_data_id",
                f"must be the id PdfValidationData gave ({DIGEST_BYTES} bytes)",
            )
        try:
            signed = self._signer.pdf_digest.sign(
                request.document_digest, request.validation_data_id
            )
        except StaleValidationData as exc:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except ValidationDataUnavailable:
            abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the validation data of the seal certificate is not available (CRLs)",
            )
        except ClockNotTrusted as exc:
            abort(context, grpc.StatusCode.UNAVAILABLE, f"time not available: {exc}")
        except TokenUnavailable:
            abort(context, grpc.StatusCode.UNAVAILABLE, "the signing token is not available")
        return signing_pb2.SignPdfDigestResponse(signed_data=signed)

    def GetCertificateChain(
        self, request: signing_pb2.GetCertificateChainRequest, context: grpc.ServicerContext
    ) -> signing_pb2.CertificateChain:
        purpose = _PURPOSES.get(request.purpose)
        if purpose is None:
            invalid_argument(
                context, "purpose", "must be KEY_PURPOSE_SEAL or KEY_PURPOSE_TIMESTAMPING"
            )
        try:
            return signing_pb2.CertificateChain(
                certificates=self._signer.certificate_chain(purpose)
            )
        except TokenUnavailable:
            abort(context, grpc.StatusCode.UNAVAILABLE, "the signing token is not available")

    def WrapKey(
        self, request: signing_pb2.WrapKeyRequest, context: grpc.ServicerContext
    ) -> signing_pb2.WrapKeyResponse:
        if len(request.key) not in (16, 24, 32):
            invalid_argument(context, "key", "must be an AES key of 16, 24 or 32 bytes")
        _check_context(request.context, context)
        try:
            return signing_pb2.WrapKeyResponse(
                wrapped_key=self._signer.wrap_key(request.key, request.context)
            )
        except TokenUnavailable:
            abort(context, grpc.StatusCode.UNAVAILABLE, "the signing token is not available")

    def WrapKeys(
        self, request: signing_pb2.WrapKeysRequest, context: grpc.ServicerContext
    ) -> signing_pb2.WrapKeysResponse:
        if not 0 < len(request.keys) <= MAX_KEYS_PER_CALL:
            invalid_argument(context, "keys", f"give 1 to {MAX_KEYS_PER_CALL} keys")
        for i, item in enumerate(request.keys):
            if len(item.key) not in (16, 24, 32):
                invalid_argument(
                    context, f"keys[{i}].key", "must be an AES key of 16, 24 or 32 bytes"
                )
            _check_context(item.context, context, f"keys[{i}].context")
        try:
            return signing_pb2.WrapKeysResponse(
                wrapped_keys=[self._signer.wrap_key(k.key, k.context) for k in request.keys]
            )
        except TokenUnavailable:
            abort(context, grpc.StatusCode.UNAVAILABLE, "the signing token is not available")

    def UnwrapKey(
        self, request: signing_pb2.UnwrapKeyRequest, context: grpc.ServicerContext
    ) -> signing_pb2.UnwrapKeyResponse:
        _check_context(request.context, context)
        try:
            return signing_pb2.UnwrapKeyResponse(
                key=self._signer.unwrap_key(request.wrapped_key, request.context)
            )
        except UnwrapFailed as exc:
            invalid_argument(context, "wrapped_key", str(exc))
        except WrapKeyUnknown as exc:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except TokenUnavailable:
            abort(context, grpc.StatusCode.UNAVAILABLE, "the signing token is not available")

    def RewrapKeys(
        self, request: signing_pb2.RewrapKeysRequest, context: grpc.ServicerContext
    ) -> signing_pb2.RewrapKeysResponse:
        if not 0 < len(request.keys) <= MAX_KEYS_PER_CALL:
            invalid_argument(context, "keys", f"give 1 to {MAX_KEYS_PER_CALL} keys")
        for i, item in enumerate(request.keys):
            _check_context(item.context, context, f"keys[{i}].context")
        done = []
        for i, item in enumerate(request.keys):
            try:
                wrapped, changed = self._signer.rewrap_key(item.wrapped_key, item.context)
            except UnwrapFailed as exc:
                invalid_argument(context, f"keys[{i}].wrapped_key", str(exc))
            except WrapKeyUnknown as exc:
                abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"keys[{i}]: {exc}")
            except TokenUnavailable:
                abort(context, grpc.StatusCode.UNAVAILABLE, "the signing token is not available")
            done.append(signing_pb2.RewrappedKey(wrapped_key=wrapped, rewrapped=changed))
        return signing_pb2.RewrapKeysResponse(keys=done)


def _check_context(value: bytes, context: grpc.ServicerContext, field: str = "context") -> None:
    if not value:
        invalid_argument(context, field, "must name what the key protects (e.g. the letter)")
    if len(value) > MAX_CONTEXT:
        invalid_argument(context, field, f"must be at most {MAX_CONTEXT} bytes")
