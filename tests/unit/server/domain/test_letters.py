"""The letter state machine: every state against every action."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lre.server.domain.errors import AcceptanceWindowClosed, InvalidTransition
from lre.server.domain.letters import TRANSITIONS, EvidenceEvent, Letter, LetterState, Outcome

DEPOSIT = dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.UTC)
NOTIFIED = dt.datetime(2026, 3, 3, 9, 5, tzinfo=dt.UTC)
CLOSES = dt.datetime(2026, 3, 18, 23, 0, tzinfo=dt.UTC)  # 19 March 00:00 Paris
DURING = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
AFTER = dt.datetime(2026, 3, 19, 1, 0, tzinfo=dt.UTC)


def letter_in(state: LetterState) -> Letter:
    notified = state in (
        LetterState.NOTIFIED,
        LetterState.ACCEPTED,
        LetterState.REFUSED,
        LetterState.EXPIRED,
    )
    return Letter(
        state=state, deposit_time=DEPOSIT, notification_time=NOTIFIED if notified else None
    )


ACTIONS: dict[str, tuple[Callable[[Letter], Outcome], LetterState, EvidenceEvent]] = {
    "notify": (
        lambda letter: letter.notify(NOTIFIED),
        LetterState.NOTIFIED,
        EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE,
    ),
    "fail_notification": (
        lambda letter: letter.fail_notification(NOTIFIED),
        LetterState.NOTIFICATION_FAILED,
        EvidenceEvent.NOTIFICATION_FOR_ACCEPTANCE_FAILURE,
    ),
    "accept": (
        lambda letter: letter.accept(DURING),
        LetterState.ACCEPTED,
        EvidenceEvent.CONSIGNMENT_ACCEPTANCE,
    ),
    "refuse": (
        lambda letter: letter.refuse(DURING),
        LetterState.REFUSED,
        EvidenceEvent.CONSIGNMENT_REJECTION,
    ),
    "expire": (
        lambda letter: letter.expire(AFTER),
        LetterState.EXPIRED,
        EvidenceEvent.ACCEPTANCE_REJECTION_EXPIRY,
    ),
}


@pytest.mark.parametrize("state", list(LetterState))
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_state_against_every_action(state: LetterState, action: str) -> None:
    perform, target, event = ACTIONS[action]
    letter = letter_in(state)
    if target in TRANSITIONS[state]:
        outcome = perform(letter)
        assert (outcome.state, outcome.event, letter.state) == (target, event, target)
    else:
        with pytest.raises(InvalidTransition):
            perform(letter)
        assert letter.state is state


def test_final_states_are_exactly_those_nothing_follows() -> None:
    final = {s for s in LetterState if s.final}
    assert final == {
        LetterState.ACCEPTED,
        LetterState.REFUSED,
        LetterState.EXPIRED,
        LetterState.REJECTED,
        # A failed notification ends the letter too: its content must reach
        # the end of its retention like any other's.
        LetterState.NOTIFICATION_FAILED,
    }
    assert all(not TRANSITIONS[s] for s in final)
    assert all(TRANSITIONS[s] for s in set(LetterState) - final)


def test_decisions_after_the_window_are_refused_and_expiry_before_it_too() -> None:
    late = letter_in(LetterState.NOTIFIED)
    with pytest.raises(AcceptanceWindowClosed):
        late.accept(CLOSES)
    with pytest.raises(AcceptanceWindowClosed):
        late.refuse(CLOSES)
    early = letter_in(LetterState.NOTIFIED)
    with pytest.raises(InvalidTransition, match="still open"):
        early.expire(CLOSES - dt.timedelta(microseconds=1))
    assert early.accept(CLOSES - dt.timedelta(microseconds=1)).state is LetterState.ACCEPTED


def test_non_claim_is_dated_at_the_end_of_the_window_not_at_the_sweep() -> None:
    letter = letter_in(LetterState.NOTIFIED)
    outcome = letter.expire(AFTER + dt.timedelta(hours=20))
    assert outcome.event_time == CLOSES
    assert letter.decision_time == CLOSES


@given(
    st.datetimes(
        min_value=dt.datetime(2026, 3, 3, 9, 5),
        max_value=dt.datetime(2026, 4, 30),
        timezones=st.just(dt.UTC),
    )
)
def test_at_any_instant_exactly_one_of_accept_and_expire_is_possible(now: dt.datetime) -> None:
    accepted = expired = True
    try:
        letter_in(LetterState.NOTIFIED).accept(now)
    except InvalidTransition:
        accepted = False
    try:
        letter_in(LetterState.NOTIFIED).expire(now)
    except InvalidTransition:
        expired = False
    assert accepted != expired


def test_content_and_sender_only_after_acceptance() -> None:
    for state in LetterState:
        letter = letter_in(state)
        assert letter.content_available_to_recipient == (state is LetterState.ACCEPTED)
        assert letter.sender_visible_to_recipient == (state is LetterState.ACCEPTED)
        if state is LetterState.ACCEPTED:
            assert letter.hand_over_content(DURING).event is EvidenceEvent.CONTENT_HANDOVER
        else:
            with pytest.raises(InvalidTransition):
                letter.hand_over_content(DURING)
