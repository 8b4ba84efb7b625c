"""A recipient's decision is made once a letter: retried, it gets the first
result; another decision, or a refusal with another reason, is refused."""

from __future__ import annotations

import pytest

from lre.server.domain.errors import FailedPrecondition, InvalidTransition
from lre.server.domain.letters import LetterState
from tests.support.world import World


def test_a_retried_decision_gets_the_first_result_and_another_is_refused(
    world: World, smtp_port: int
) -> None:
    refused, accepted = world.notified(2, smtp_port)
    recipient = world.recipient_session()
    first = world.decisions.refuse(recipient, refused.id, "Trop tard")
    assert first.state is LetterState.REFUSED
    assert world.decisions.refuse(recipient, refused.id, "Trop tard") == first
    for other in ("Autre raison", ""):
        with pytest.raises(FailedPrecondition, match="another reason"):
            world.decisions.refuse(recipient, refused.id, other)
    with pytest.raises(InvalidTransition):
        world.decisions.accept(recipient, refused.id)
    done = world.decisions.accept(recipient, accepted.id)
    assert world.decisions.accept(recipient, accepted.id) == done
    with pytest.raises(InvalidTransition):
        world.decisions.refuse(recipient, accepted.id, "")
