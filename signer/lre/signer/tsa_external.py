"""An external RFC 3161 timestamp authority, reached over HTTP(S).

A provider that buys its timestamps from a (qualified) TSA names it here:
its URL, the certificate it must sign with (and that certificate's CAs up
to the root, the validation data seals and proofs carry), optional
authentication, and a timeout. Every token it returns is checked before it
is used: granted, our nonce, our imprint, signed by exactly the configured
certificate, whose path to the configured root is valid now (pyHanko's
timestamp-token validation, not hand-written CMS checks), and a genTime
within ``max_skew_s`` of our clock. A token that fails any of these is
refused like an unreachable TSA: the next source is tried.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext

from lre.runtime import asn1crypto_fix

asn1crypto_fix.apply()
log = logging.getLogger("lre.signer.tsa_external")

T = TypeVar("T")
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY_BYTES = 64 * 1024


class ExternalTsaError(Exception):
    """The external TSA gave no usable token; the message says why (no secret)."""


class _TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 TimeStampResp with the token OPTIONAL, as in the RFC (absent
    from every rejection; asn1crypto's own makes it mandatory)."""

    _fields = [  # noqa: RUF012 -- asn1crypto's declaration style
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class ExternalTsaConfig:
    name: str
    url: str
    # PEM: the TSA's certificate first, then its CAs up to and including the root.
    certificate_file: Path
    timeout_s: float = 5.0
    # HTTP Basic (username + password_file) or a bearer token file; secrets
    # are read from files, never from the configuration itself.
    username: str = ""
    password_file: Path | None = None
    bearer_token_file: Path | None = None
    # PEM CA bundle to check the TSA's HTTPS certificate ("" the system's).
    https_ca_file: Path | None = None
    # Ask the TSA for this policy ("" whatever it serves).
    policy_oid: str = ""
    max_skew_s: float = 5.0
    # After a failure, passed over this long before it is asked again.
    retry_after_s: float = 30.0


class ExternalTsa:
    def __init__(self, config: ExternalTsaConfig) -> None:
        if not config.url.startswith(("http://", "https://")):
            raise ValueError(f"external TSA {config.name}: url must be http:// or https://")
        chain = x509.load_pem_x509_certificates(config.certificate_file.read_bytes())
        if not chain:
            raise ValueError(f"external TSA {config.name}: no certificate in certificate_file")
        self.name = config.name
        self.config = config
        self.retry_after_s = config.retry_after_s
        if config.url.startswith("http://") and (config.username or config.bearer_token_file):
            log.warning("external TSA credentials sent without TLS", extra={"source": config.name})
        # The TSA's certificate, then its CAs: what seals and proofs carry.
        self.chain: list[x509.Certificate] = chain
        self.certificate = chain[0]
        ders = [c.public_bytes(serialization.Encoding.DER) for c in chain]
        self._expected = asn1_x509.Certificate.load(ders[0])
        self._cas = [asn1_x509.Certificate.load(d) for d in ders[1:]]
        self._roots = [c for c in self._cas if c.self_issued] or [self._expected]
        if config.username and config.password_file is None:
            raise ValueError(f"external TSA {config.name}: username needs password_file")
        self._context = (
            ssl.create_default_context(cafile=str(config.https_ca_file))
            if config.https_ca_file is not None
            else None
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE}
        c = self.config
        if c.bearer_token_file is not None:
            token = c.bearer_token_file.read_text(encoding="utf-8").strip()
            headers["Authorization"] = f"Bearer {token}"
        elif c.username and c.password_file is not None:
            password = c.password_file.read_text(encoding="utf-8").strip()
            basic = base64.b64encode(f"{c.username}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        return headers

    def timestamp_digest(self, digest: bytes) -> bytes:
        """A checked DER TimeStampToken over a SHA-256 ``digest``; raises
        ExternalTsaError with the reason when there is none."""
        nonce = secrets.randbits(63) | 1
        fields: dict[str, object] = {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "hashed_message": digest,
            },
            "nonce": nonce,
            "cert_req": True,
        }
        if self.config.policy_oid:
            fields["req_policy"] = self.config.policy_oid
        reply = self._post(tsp.TimeStampReq(fields).dump())
        token = self._token(reply, nonce)
        self._check(token, digest)
        return bytes(token.dump())

    def _post(self, query: bytes) -> bytes:
        # The scheme is checked in __init__: http or https only.
        request = urllib.request.Request(  # noqa: S310
            self.config.url, data=query, headers=self._headers(), method="POST"
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.config.timeout_s, context=self._context
            ) as answer:
                if answer.headers.get_content_type() != REPLY_TYPE:
                    raise ExternalTsaError(f"answered {answer.headers.get_content_type()}")
                body: bytes = answer.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise ExternalTsaError(f"answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ExternalTsaError(f"unreachable ({type(reason).__name__})") from None
        if len(body) > MAX_REPLY_BYTES:
            raise ExternalTsaError("answer too large")
        return body

    @staticmethod
    def _token(reply: bytes, nonce: int) -> cms.ContentInfo:
        try:
            response = _TimeStampResp.load(reply, strict=True)
            status = response["status"]
            if status["status"].native != "granted":
                fail = ", ".join(sorted(status["fail_info"].native or [])) or "no failInfo"
                raise ExternalTsaError(f"refused the request ({status['status'].native}: {fail})")
            token = response["time_stamp_token"]
            if token.native is None or token["content_type"].native != "signed_data":
                raise ExternalTsaError("granted without a timestamp token")
            info = token["content"]["encap_content_info"]["content"].parsed
            if not isinstance(info, tsp.TSTInfo):
                raise ExternalTsaError("the token holds no TSTInfo")
            if info["nonce"].native != nonce:
                raise ExternalTsaError("the token does not carry our nonce")
        except (ValueError, TypeError, KeyError) as exc:
            raise ExternalTsaError(f"malformed answer ({type(exc).__name__})") from None
        return token

    def _check(self, token: cms.ContentInfo, digest: bytes) -> None:
        signed = token["content"]
        context = ValidationContext(
            trust_roots=self._roots,
            other_certs=[self._expected, *self._cas],
            allow_fetching=False,
            # Revocation of the TSA's chain is what the CRLs in crl_file show,
            # checked when seals and proofs embed them; not fetched here.
            revocation_mode="soft-fail",
        )

        def imprint(algorithm: str) -> bytes:
            if algorithm != "sha256":
                raise ExternalTsaError(f"the token's imprint uses {algorithm}, not sha256")
            return digest

        try:
            status = _run_coroutine(lambda: validate_tst_signed_data(signed, context, imprint))
        except ExternalTsaError:
            raise
        except Exception as exc:  # pyHanko's errors for a token it cannot validate
            raise ExternalTsaError(f"token not valid ({type(exc).__name__})") from None
        if not (status.get("intact") and status.get("valid")):
            raise ExternalTsaError("the token's signature does not verify")
        signer = status.get("signing_cert")
        if signer is None or signer.dump() != self._expected.dump():
            raise ExternalTsaError("the token is not signed by the configured certificate")
        if status.get("trust_problem_indic") is not None:
            raise ExternalTsaError(
                f"the TSA certificate's path is not valid ({status['trust_problem_indic']})"
            )
        info = signed["encap_content_info"]["content"].parsed
        if info["message_imprint"]["hashed_message"].native != digest:
            raise ExternalTsaError("the token is over another digest")
        gen_time: dt.datetime = info["gen_time"].native
        skew = abs((gen_time - dt.datetime.now(dt.UTC)).total_seconds())
        if skew > self.config.max_skew_s:
            raise ExternalTsaError(f"the token's time is {skew:.1f} s from ours")


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs a coroutine to its end from synchronous code, also when called
    under a running event loop (pyHanko's PDF signing calls timestamps from
    one): then on a thread of its own, with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1, thread_name_prefix="tsa-check") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
