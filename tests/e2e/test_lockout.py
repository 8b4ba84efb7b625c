"""Lockouts a third party cannot trigger, against the real server over mutual
TLS on SQLite and PostgreSQL: wrong passwords for the recipient's party
through the sender gateway lock the gateway out (RESOURCE_EXHAUSTED with a
RetryInfo that doubles at each lockout), never the recipient, who opens its
session through its portal meanwhile; through the portal, failures count
per end user the portal forwards, so one user cannot lock another out. A
recipient whose letter awaits its decision is not locked out by the
sender's gateway guessing its password or its notice code (counted apart,
lre_identity_lockouts_in_window_total); a user of its portal that locked
itself out lifts that lockout with a code e-mailed to the party, which no
other caller can use. A gateway that forwards a new end user at each guess
meets its ceiling: all its end users are locked out of the party, its
portal is not."""

from __future__ import annotations

import email
import mailbox
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lre.client.maildir import plain_text
from lre.client.parties import enroll_party, log_in, register_party
from lre.dev.tls import TlsFiles
from lre.server.services.identity.throttles import CALLER_CEILING_FACTOR
from lre.v1 import (
    custody_pb2,
    custody_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)
from tests.support.clients import (
    bearer,
    confirm_professional,
    deposit_letter,
    enroll_person,
    wait_notified,
)
from tests.support.mail import notice_in
from tests.support.metrics import tls_metric
from tests.support.rpc import channel
from tests.support.server import ServerProcess, server_process
from tests.support.signer import SignerProcess

THRESHOLD = 3
LOCKOUT_S = 2


@pytest.fixture
def server(
    database_url: str, signer_process: SignerProcess, tls: TlsFiles, tmp_path: Path
) -> Iterator[ServerProcess]:
    with server_process(
        signer_process,
        tmp_path,
        database_url,
        tls=tls,
        outbox_interval_s="0.2",
        lockout_threshold=str(THRESHOLD),
        notice_code_threshold=str(THRESHOLD),
        lockout_s=str(LOCKOUT_S),
    ) as process:
        yield process
    logs = process.log.read_text()
    assert "Traceback" not in logs and '"level": "error"' not in logs


def _attempt(
    identity: identity_pb2_grpc.IdentityServiceStub, party: str, end_user: str = ""
) -> tuple[grpc.StatusCode, float | None]:
    """A wrong password for ``party``: the code, and the RetryInfo delay if any."""
    metadata = (("x-lre-end-user", end_user),) if end_user else None
    try:
        identity.CreateSession(
            identity_pb2.CreateSessionRequest(
                party=party, password="not the password at all", totp_code="000000"
            ),
            metadata=metadata,
            timeout=10,
        )
    except grpc.RpcError as exc:
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
        for detail in status.details if status else []:
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(retry):
                return exc.code(), retry.retry_delay.ToTimedelta().total_seconds()
        return exc.code(), None
    raise AssertionError("a wrong password opened a session")


def test_a_gateway_cannot_lock_a_recipient_out_of_its_portal(
    server: ServerProcess, tls: TlsFiles
) -> None:
    with (
        channel(server.address, tls, "sender-gateway") as gateway_channel,
        channel(server.address, tls, "recipient-portal") as portal_channel,
        channel(server.address, tls, "operator") as operator_channel,
    ):
        gateway = identity_pb2_grpc.IdentityServiceStub(gateway_channel)
        portal = identity_pb2_grpc.IdentityServiceStub(portal_channel)
        operator = identity_pb2_grpc.IdentityServiceStub(operator_channel)
        victim = enroll_person(
            portal, server.enrolment_codes, "victim", operator, "Claire", "Martin"
        )
        # The attacker knows the party id only.
        codes = [_attempt(gateway, victim.name) for _ in range(THRESHOLD + 1)]
        assert [c for c, _ in codes[: THRESHOLD - 1]] == [grpc.StatusCode.UNAUTHENTICATED] * (
            THRESHOLD - 1
        )
        locked, delay = codes[THRESHOLD - 1]
        assert locked == grpc.StatusCode.RESOURCE_EXHAUSTED and delay == LOCKOUT_S
        assert codes[THRESHOLD][0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The recipient, through its own portal, is not locked out.
        assert log_in(portal, victim)

        # Through the portal, failures are counted per end user it forwards.
        for _ in range(THRESHOLD):
            code, delay = _attempt(portal, victim.name, end_user="203.0.113.7")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay == LOCKOUT_S
        assert _attempt(portal, victim.name, "198.51.100.2")[0] == grpc.StatusCode.UNAUTHENTICATED

        # The gateway locked out again once its lockout ends: twice as long.
        time.sleep(LOCKOUT_S + 0.5)
        for _ in range(THRESHOLD):
            code, delay = _attempt(gateway, victim.name)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay == 2 * LOCKOUT_S

        # A gateway that forwards a new end user at each guess meets its
        # ceiling: all its end users are locked out, the portal is not.
        other = enroll_person(portal, server.enrolment_codes, "ceiling", operator, "Anne", "Leroy")
        lockouts = tls_metric(server, tls.ca, "lre_identity_lockouts_total")
        ceiling = THRESHOLD * CALLER_CEILING_FACTOR
        # One guess per end-user value: no source ever reaches the threshold.
        codes = [_attempt(gateway, other.name, f"2001:db8::{n:x}") for n in range(ceiling)]
        assert [c for c, _ in codes[:-1]] == [grpc.StatusCode.UNAUTHENTICATED] * (ceiling - 1)
        assert codes[-1] == (grpc.StatusCode.RESOURCE_EXHAUSTED, LOCKOUT_S)
        assert _attempt(gateway, other.name, "2001:db8::ffff")[0] == (
            grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        assert log_in(portal, other)
        assert tls_metric(server, tls.ca, "lre_identity_lockouts_total") == lockouts + 1


def _unlock_codes(server: ServerProcess, party: str) -> set[str]:
    """The unlock codes e-mailed so far for ``party``, as its mailbox has them."""
    found: set[str] = set()
    if (server.maildir / "new").exists():
        for message in mailbox.Maildir(server.maildir, create=False):
            text = plain_text(email.message_from_bytes(message.as_bytes()))
            found.update(re.findall(rf"Account: {re.escape(party)}\s+Unlock code: (\d{{6}})", text))
    return found


def _new_unlock_code(server: ServerProcess, party: str, known: set[str]) -> str:
    """The unlock code the outbox delivered since ``known`` were read."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = _unlock_codes(server, party) - known
        if new:
            (code,) = new
            return code
        time.sleep(0.2)
    raise AssertionError(f"no unlock code for {party} in {server.maildir}")


def _in_window(server: ServerProcess, tls: TlsFiles, purpose: str) -> float:
    return tls_metric(server, tls.ca, "lre_identity_lockouts_in_window_total", purpose=purpose)


def _failure(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    raise AssertionError("the call succeeded")


def test_a_recipient_with_an_open_letter_is_never_locked_out_by_the_gateway_and_unlocks_by_mail(
    server: ServerProcess, tls: TlsFiles
) -> None:
    with (
        channel(server.address, tls, "sender-gateway") as gateway_channel,
        channel(server.address, tls, "recipient-portal") as portal_channel,
        channel(server.address, tls, "operator") as operator_channel,
    ):
        gateway = identity_pb2_grpc.IdentityServiceStub(gateway_channel)
        portal = identity_pb2_grpc.IdentityServiceStub(portal_channel)
        operator = identity_pb2_grpc.IdentityServiceStub(operator_channel)
        notices = notification_pb2_grpc.NotificationServiceStub(gateway_channel)
        claims = notification_pb2_grpc.NotificationServiceStub(portal_channel)
        _, sender_token = register_party(
            gateway,
            "l-s",
            operator,
            codes=server.enrolment_codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            professional=True,
            company_name="Bailleur SARL",
            email="gestion@bailleur.example",
        )
        victim = enroll_party(
            portal,
            "l-r",
            operator,
            codes=server.enrolment_codes,
            kind=identity_pb2.PARTY_KIND_LEGAL_PERSON,
            professional=True,
            company_name="Dest SA",
            email="courrier@dest.example",
        )
        confirm_professional(operator, victim.name)
        sending = custody_pb2_grpc.CustodyServiceStub(gateway_channel)
        letter = deposit_letter(sending, sender_token, victim.name, "l-1")
        wait_notified(sending, [letter], bearer(sender_token))
        reference, code = notice_in(server.maildir, "courrier@dest.example")
        in_window = {p: _in_window(server, tls, p) for p in ("session", "notice_code")}

        # The sender's gateway guesses the recipient's password, then its
        # notice code: locked out itself, counted as lockouts in the window.
        for _ in range(THRESHOLD):
            locked, _delay = _attempt(gateway, victim.name)
        assert locked == grpc.StatusCode.RESOURCE_EXHAUSTED
        wrong = notification_pb2.VerifyNotificationRequest(
            letter_reference=reference, verification_code="WRONG-CODE"
        )
        answers = [
            notices.VerifyNotification(wrong, timeout=10).genuine for _ in range(THRESHOLD - 1)
        ]
        assert answers == [False] * (THRESHOLD - 1)
        assert _failure(lambda: notices.VerifyNotification(wrong, timeout=10)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        assert _in_window(server, tls, "session") == in_window["session"] + 1
        assert _in_window(server, tls, "notice_code") == in_window["notice_code"] + 1
        # Meanwhile the recipient, through its portal, claims, signs in and accepts.
        claimed = claims.ClaimLetter(
            notification_pb2.ClaimLetterRequest(letter_reference=reference, verification_code=code),
            timeout=10,
        )
        assert claimed.letter == letter.name
        token = log_in(portal, victim)
        custody_pb2_grpc.CustodyServiceStub(portal_channel).AcceptLetter(
            custody_pb2.AcceptLetterRequest(name=letter.name), metadata=bearer(token), timeout=30
        )

        # A user of the portal locks itself out, and unlocks with the code
        # e-mailed to the party: only its own lockout is lifted.
        user = (("x-lre-end-user", "203.0.113.7"),)
        for _ in range(THRESHOLD):
            locked, _delay = _attempt(portal, victim.name, end_user="203.0.113.7")
        assert locked == grpc.StatusCode.RESOURCE_EXHAUSTED
        send = identity_pb2.SendUnlockCodeRequest(party=victim.name)
        # Nothing to unlock for a caller that is not locked out.
        assert _failure(lambda: portal.SendUnlockCode(send, timeout=10)) == (
            grpc.StatusCode.FAILED_PRECONDITION
        )
        known = _unlock_codes(server, victim.name)
        sent = portal.SendUnlockCode(send, metadata=user, timeout=10)
        assert _failure(lambda: portal.SendUnlockCode(send, metadata=user, timeout=10)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED  # one a minute
        )
        unlock_code = _new_unlock_code(server, victim.name, known)
        unlock = identity_pb2.UnlockRequest(
            party=victim.name, code=identity_pb2.EmailCode(code_id=sent.code_id, code=unlock_code)
        )
        # The gateway, locked out too, cannot use it (the code is the user's).
        assert _failure(lambda: gateway.Unlock(unlock, timeout=10)) == (
            grpc.StatusCode.FAILED_PRECONDITION
        )
        portal.Unlock(unlock, metadata=user, timeout=10)
        assert _attempt(portal, victim.name, "203.0.113.7")[0] == grpc.StatusCode.UNAUTHENTICATED
        # Once only.
        assert _failure(lambda: portal.Unlock(unlock, metadata=user, timeout=10)) == (
            grpc.StatusCode.FAILED_PRECONDITION
        )
