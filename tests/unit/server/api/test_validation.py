"""The server's string rules: every rule names a real request field, lengths
are the columns', e-mail addresses go through the domain's parser."""

from __future__ import annotations

from google.protobuf import descriptor_pool

from lre.server.api import validation
from lre.server.storage.models import column_length
from lre.v1 import common_pb2, custody_pb2, identity_pb2, notification_pb2

_ = (common_pb2, custody_pb2, identity_pb2, notification_pb2)  # in the default pool
check = validation.checker(column_length)


def test_every_rule_names_a_string_field_of_the_api() -> None:
    pool = descriptor_pool.Default()
    for name in validation.rules(column_length):
        message, _, field = name.rpartition(".")
        descriptor = pool.FindMessageTypeByName(message).fields_by_name[field]
        assert descriptor.type == descriptor.TYPE_STRING, name


def test_lengths_come_from_the_columns() -> None:
    rules = validation.rules(column_length)
    assert rules["lre.v1.Party.given_name"].max_length == 200
    assert rules["lre.v1.Party.company_name"].max_length == 300
    assert rules["lre.v1.ContentPart.filename"].max_length == 255
    assert rules["lre.v1.CreateWebhookRequest.url"].max_length == 2048


def test_requests_are_checked_through_nested_messages() -> None:
    request = identity_pb2.CreatePartyRequest(
        request_id="r-1",
        party=identity_pb2.Party(
            given_name="Zoé",
            family_name="D" * 201,
            email="root,victim@example.org",
            postal_address=common_pb2.PostalAddress(lines=["1 rue de la Paix", "b\x00"]),
        ),
    )
    found = check(request)
    assert set(found) == {
        "party.family_name",
        "party.email",
        "party.postal_address.lines[1]",
    }
    assert found["party.family_name"] == "at most 200 characters"
    refusal = custody_pb2.RefuseLetterRequest(name="letters/x", reason="Je refuse.\nMerci.")
    assert check(refusal) == {}  # free text keeps its line breaks


def test_a_notice_typed_back_has_one_bound_in_both_calls() -> None:
    for request in (
        notification_pb2.VerifyNotificationRequest(letter_reference="R" * 65),
        notification_pb2.ClaimLetterRequest(letter_reference="R" * 65),
    ):
        assert check(request) == {"letter_reference": "at most 64 characters"}
